"""The monitor's web server: Starlette routes, served by uvicorn in a thread.

    /            the page (HTML; its script and style are files of this package)
    /static/...  monitor.js, monitor.css
    /events      server-sent events: the Collector's state, as JSON, on each refresh
    /state       the same state once (JSON)
    /metrics     Prometheus text format

Every response forbids loading anything from elsewhere (Content-Security-Policy
'self'): the page works offline, and a test proves it. With a token, every
request must carry it (?token=, or Authorization: Bearer)."""
from __future__ import annotations

import asyncio
import hmac
import json
import socket
import threading
from importlib import resources

from ._bind import is_loopback
from ._collector import Collector

__all__ = ["Server", "serve", "make_app"]

_CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
_STATIC = {"monitor.js": "text/javascript", "monitor.css": "text/css"}


def _asset(name: str) -> bytes:
    return resources.files(__package__).joinpath("_static", name).read_bytes()


def make_app(collector: Collector, *, token: str | None = None):
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse, Response, StreamingResponse
    from starlette.routing import Route

    from . import _metrics
    registry = _metrics.registry_for(collector)
    page = _asset("index.html")
    headers = {"Content-Security-Policy": _CSP, "X-Content-Type-Options": "nosniff",
               "Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}

    def allowed(request) -> bool:
        if token is None:
            return True
        given = request.query_params.get("token", "")
        auth = request.headers.get("authorization", "")
        if auth.lower().startswith("bearer "):
            given = auth[7:]
        return hmac.compare_digest(given.encode(), token.encode())

    def guarded(handler):
        async def endpoint(request):
            if not allowed(request):
                return Response("a token is required (?token=...)\n", status_code=401,
                                media_type="text/plain", headers=headers)
            return await handler(request)
        return endpoint

    async def index(request):
        return Response(page, media_type="text/html; charset=utf-8", headers=headers)

    async def static(request):
        name = request.path_params["name"]
        if name not in _STATIC:
            return Response("not found\n", status_code=404, media_type="text/plain", headers=headers)
        return Response(_asset(name), media_type=_STATIC[name], headers=headers)

    async def state(request):
        return JSONResponse(collector.state(), headers=headers)

    async def metrics(request):
        body, content_type = _metrics.render(registry)
        return Response(body, media_type=content_type, headers=headers)

    async def events(request):
        async def stream():
            version = -1
            while not await request.is_disconnected():
                current = await asyncio.to_thread(collector.wait_newer, version, 1.0)
                if current and current.get("version", 0) > version:
                    version = current["version"]
                    yield f"data: {json.dumps(current, default=str)}\n\n"
                elif collector.ended:
                    yield "event: ended\ndata: {}\n\n"
                    return
                else:
                    yield ": keep-alive\n\n"
        return StreamingResponse(stream(), media_type="text/event-stream",
                                 headers={**headers, "X-Accel-Buffering": "no"})

    routes = [Route("/", guarded(index)), Route("/static/{name}", guarded(static)),
              Route("/state", guarded(state)), Route("/metrics", guarded(metrics)),
              Route("/events", guarded(events))]
    return Starlette(routes=routes)


class Server:
    """A running monitor: `url`, `port`; `wait()` until closed; `close()`."""

    def __init__(self, session: str, *, host: str, port: int, token: str | None, period: float):
        import uvicorn
        self.collector = Collector(session, period=period)
        try:
            family = socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET
            sock = socket.socket(family, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host.strip("[]"), port))
            sock.listen(64)
            self._sock = sock
            self.host, self.port = host, sock.getsockname()[1]
            config = uvicorn.Config(make_app(self.collector, token=token), log_level="warning",
                                    lifespan="off", access_log=False, timeout_graceful_shutdown=1)
            self._server = uvicorn.Server(config)
        except BaseException:
            self.collector.close()
            raise
        shown = f"[{host}]" if ":" in host else host
        self.url = f"http://{shown}:{self.port}/" + (f"?token={token}" if token else "")
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [sock]},
                                        name="ether-monitor-http", daemon=True)
        self._thread.start()

    def wait(self, timeout: float | None = None) -> bool:
        """Until close() (True), or timeout."""
        return self._closed.wait(timeout)

    def close(self) -> None:
        self._server.should_exit = True
        self.collector.close()  # ends the event streams
        self._thread.join(5.0)
        self._sock.close()
        self._closed.set()

    def __enter__(self) -> "Server":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def serve(session: str, *, host: str = "127.0.0.1", port: int = 8090, token: str | None = None,
          period: float = 1.0) -> Server:
    """Start the monitor of `session`; check_bind(host, ...) first."""
    if not is_loopback(host) and not token:
        from ._bind import BindRefused
        raise BindRefused(f"serving on {host!r} needs a token")
    return Server(session, host=host, port=port, token=token, period=period)
