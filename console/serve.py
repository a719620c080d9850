"""`vigil serve`: the console in a browser, through textual-serve, behind a random access token.

textual-serve starts one console process per browser connection and relays its terminal over a
websocket; it has no authentication of its own, so every route here first checks the token: the
`?token=` of the link printed at start, or the cookie the first good link sets (the page's
static files and websocket are fetched without the query string). Each session's console is told
where the keys come from (env VIGIL_VIA), so a decision made in a browser says so in the log.
"""

from __future__ import annotations

import argparse
import asyncio
import hmac
import logging
import re
import secrets
import shlex
import signal
import socket
import sys

from aiohttp import WSCloseCode, web
from textual_serve.server import Server, to_int, log
from textual_serve.app_service import AppService

__all__ = ["TokenServer", "console_command", "serve"]

COOKIE = "vigil_token"
_WILDCARD = {"0.0.0.0", "::", ""}
_TOKEN_IN = re.compile(r"(token=)[^&\s\"]*")


class _HideTokens(logging.Filter):
    """aiohttp's access log writes each request line, query string and all."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = _TOKEN_IN.sub(r"\1...", record.getMessage())
        record.args = ()
        return True


def console_command(args: argparse.Namespace, via: str) -> str:
    """The shell command textual-serve runs for one session: this Python, this log, these graphs."""
    argv = [sys.executable, "-m", "console.cli"]
    for option in ("db", "workflows", "theme"):
        value = getattr(args, option, None)
        if value:
            argv += [f"--{option}", value]
    # exec: the console is the process textual-serve talks to and stops, not a shell around it.
    return f"VIGIL_VIA={shlex.quote(via)} exec {shlex.join(argv)}"


class TokenServer(Server):
    """A textual-serve Server that refuses anyone without the token and labels each session."""

    def __init__(self, args: argparse.Namespace, token: str, host: str, port: int, public_url: str):
        super().__init__(console_command(args, "vigil serve"), host=host, port=port, title="vigil",
                         public_url=public_url)
        self.args = args
        self.token = token
        self._sockets: set[web.WebSocketResponse] = set()

    def _allowed(self, request: web.Request) -> bool:
        given = request.query.get("token") or request.cookies.get(COOKIE) or ""
        return hmac.compare_digest(given.encode(), self.token.encode())

    @web.middleware
    async def _guard(self, request: web.Request, handler) -> web.StreamResponse:
        if not self._allowed(request):
            raise web.HTTPUnauthorized(text="vigil serve: open the link with its token (printed when it started)\n")
        origin = request.headers.get("Origin")
        if request.path == "/ws" and origin and origin.split("://", 1)[-1] != request.host:
            # A page from another site must not drive the console with this browser's cookie.
            raise web.HTTPForbidden(text="vigil serve: websocket from another origin\n")
        if "token" in request.query:
            # Trade the token in the link for a cookie and drop it from the address bar (and
            # from history and Referer headers).
            rest = {k: v for k, v in request.query.items() if k != "token"}
            response = web.HTTPFound(request.rel_url.with_query(rest))
            response.set_cookie(COOKIE, self.token, httponly=True, samesite="Strict", path="/")
            raise response
        return await handler(request)

    async def _make_app(self) -> web.Application:
        app = await super()._make_app()
        app.middlewares.append(self._guard)
        return app

    async def on_startup(self, app: web.Application) -> None:
        pass  # textual-serve's banner would come before we know the port is ours

    async def on_shutdown(self, app: web.Application) -> None:
        # aiohttp waits for open handlers before it exits; an open tab would hold SIGTERM up for a
        # minute. Closing the sockets ends each session, which stops its console.
        for websocket in list(self._sockets):
            await websocket.close(code=WSCloseCode.GOING_AWAY, message=b"vigil serve stopped")

    def serve(self, debug: bool = False) -> None:
        """textual-serve's serve(), printing the link only once the port is bound."""
        self.debug = debug
        self.initialize_logging()
        logging.getLogger("aiohttp.access").addFilter(_HideTokens())
        loop = asyncio.new_event_loop()
        loop.add_signal_handler(signal.SIGINT, self.request_exit)
        loop.add_signal_handler(signal.SIGTERM, self.request_exit)
        # The full link, once: it is the only place the token is ever shown.
        link = f"{self.public_url}/?token={self.token}"
        web.run_app(self._make_app(), host=self.host, port=self.port, handle_signals=False, loop=loop,
                    print=lambda *_: print(link, flush=True))

    async def handle_websocket(self, request: web.Request) -> web.WebSocketResponse:
        """textual-serve's handler, with the session's command naming the browser's address."""
        websocket = web.WebSocketResponse(heartbeat=15)
        width = to_int(request.query.get("width", "80"), 80)
        height = to_int(request.query.get("height", "24"), 24)
        peer = request.transport.get_extra_info("peername") if request.transport else None
        client = f"{peer[0]}:{peer[1]}" if peer else (request.remote or "unknown")
        app_service: AppService | None = None
        try:
            await websocket.prepare(request)
            self._sockets.add(websocket)
            app_service = AppService(
                console_command(self.args, f"vigil serve from {client}"),
                write_bytes=websocket.send_bytes, write_str=websocket.send_str, close=websocket.close,
                download_manager=self.download_manager, debug=self.debug,
            )
            log.info("session for %s", client)
            await app_service.start(width, height)
            try:
                await self._process_messages(websocket, app_service)
            finally:
                await app_service.stop()
        except asyncio.CancelledError:
            await websocket.close()
        except Exception as error:  # one broken session must not take the server down
            log.exception(error)
        finally:
            self._sockets.discard(websocket)
            if app_service is not None:
                await app_service.stop()
                await _reap(app_service)
        return websocket


async def _reap(app_service: AppService, grace: float = 10.0) -> None:
    """Wait for the session's console to exit: stop() returns once it closes its stdout, while it
    may still be handing back the runs it drove. One that hangs is killed after `grace` seconds."""
    process = app_service._process  # textual-serve keeps it private; pinned below 1.2 for this
    if process is None or process.returncode is not None:
        return
    try:
        await asyncio.wait_for(process.wait(), grace)
    except asyncio.TimeoutError:
        log.warning("a session's console did not exit in %ss; killed", grace)
        process.kill()
        await process.wait()


def serve(args: argparse.Namespace) -> int:
    from kernel.log import target_of
    from .workflows import default_registry

    # Fail here, in one line, rather than in every browser session.
    default_registry(args.workflows)
    target_of(args.db)
    host, port = args.host, args.port
    if host in _WILDCARD:
        print(f"vigil: warning: --host {host or '(any)'} exposes the console to the network; "
              "anyone with the link can approve, reject and cancel runs", file=sys.stderr)
        shown = socket.gethostname()
    else:
        shown = f"[{host}]" if ":" in host else host
    token = secrets.token_urlsafe(24)
    server = TokenServer(args, token, host, port, public_url=f"http://{shown}:{port}")
    server.serve()
    return 0
