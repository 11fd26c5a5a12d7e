"""Where the monitor may listen. Loopback only, unless asked (--allow-remote)
and protected by a token: a monitor shows a lab's whole session, and a
dashboard open to the network is how Ray clusters were taken over
(CVE-2023-48022). The recommended way in from elsewhere is `ssh -L`."""
from __future__ import annotations

import ipaddress

from ether import EtherError

__all__ = ["BindRefused", "is_loopback", "check_bind", "MIN_TOKEN"]

MIN_TOKEN = 16


class BindRefused(EtherError, ValueError):
    pass


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(host: str, *, allow_remote: bool, token: str | None) -> None:
    if is_loopback(host):
        return
    if not allow_remote:
        raise BindRefused(
            f"refusing to serve the monitor on {host!r}: it would show the session to anyone who "
            f"can reach this address. Keep the default 127.0.0.1 and tunnel to it (ssh -L "
            f"8090:127.0.0.1:8090 THIS_HOST), or pass --allow-remote with a --token")
    if not token or len(token) < MIN_TOKEN:
        raise BindRefused(
            f"--allow-remote on {host!r} needs a token of at least {MIN_TOKEN} characters "
            f"(--token-file PATH, or --token), which every request must carry; make one with "
            f"python -c 'import secrets; print(secrets.token_urlsafe(24))' > PATH")
