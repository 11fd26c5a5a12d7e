"""`python -m ether.bridge SESSION:bridge`: the bridge process (see _bridge.py).
The supervisor starts it with its MemberSpec on stdin; the argument only names
it in process listings.

Its zenoh session opens as early as it can: the link to the site (TLS, and
zenoh's routers compute their routes 100 ms after a new link) comes up while
the process imports the rest. So the config models (pydantic: the zenoh config
is built from them) load first, then it reads its spec (an interpreter started
ahead, ether/_runtime/_prestart.py, waits here), opens its session, and only then
loads its parts; Bridge.start keeps that session.
"""
import os

from ether.lowlevel import Member, launch_trace

launch_trace("bridge", "interpreter up")
from ._malloc import limit_retention  # noqa: E402

limit_retention()   # before zenoh's threads allocate anything
from ether.config import BridgeConfig  # noqa: E402

from ._zconfig import bridge_zenoh_config  # noqa: E402


def _open_ahead(options: dict):
    """(zenoh config, session) for the bridge section in `options`, or None (the
    reason in the launch trace)."""
    try:
        zconf = bridge_zenoh_config(BridgeConfig(**options["bridge"]),
                                    base_dir=options.get("base_dir") or os.getcwd())
        import json

        import zenoh  # this process never forks
        return zconf, zenoh.open(zenoh.Config.from_json5(json.dumps(zconf)))
    except Exception as exc:  # noqa: BLE001 - Bridge.start opens it again, and says what fails
        launch_trace("bridge", f"not opened ahead: {type(exc).__name__}: {exc}".replace("\n", " "))
        return None


try:
    member = Member.from_stdin()
except SystemExit as exc:   # started ahead and not needed: no spec came
    os._exit(exc.code if isinstance(exc.code, int) else 1)
opened = _open_ahead(member.options)
launch_trace("bridge", "opened ahead" if opened else "not opened ahead")
from ._bridge import main  # noqa: E402

main(member, opened)
