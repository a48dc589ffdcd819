"""A real HTTP server on 127.0.0.1, in a thread, that serves bytes made by a test.

Each path gets a ``Route`` saying what to send: a full body, a body cut short of
its Content-Length, an error status, a stall, or a trickle of single bytes. Every request path is recorded
so tests can prove that nothing was requested.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Dict, List, Optional


@dataclass(frozen=True)
class Route:
    body: bytes = b""
    status: int = 200
    send_bytes: Optional[int] = None  # send only this many body bytes, then close
    stall_after: Optional[int] = None  # after this many bytes, stop sending until released
    trickle: Optional[float] = None  # seconds between single bytes of the body
    content_length: bool = True  # False: no Content-Length header, close ends the body
    content_type: str = "application/octet-stream"


class ModelServer:
    """Use as a context manager; ``url_base`` is ``http://127.0.0.1:PORT``."""

    def __init__(self) -> None:
        self.routes: Dict[str, Route] = {}
        self.requests: List[str] = []
        self.release = threading.Event()
        self.closing = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # keep test output clean
                pass

            def do_GET(self) -> None:
                server.requests.append(self.path)
                route = server.routes.get(self.path)
                if route is None:
                    route = Route(body=b"not found", status=404)
                self.close_connection = True
                self.send_response(route.status)
                self.send_header("Content-Type", route.content_type)
                if route.content_length:
                    self.send_header("Content-Length", str(len(route.body)))
                self.send_header("Connection", "close")
                self.end_headers()
                body = route.body
                if route.send_bytes is not None:
                    body = body[: route.send_bytes]
                if route.stall_after is not None:
                    self.wfile.write(body[: route.stall_after])
                    self.wfile.flush()
                    server.release.wait(timeout=10)
                    return
                if route.trickle is not None:
                    for i in range(len(body)):
                        if server.closing.wait(route.trickle):
                            return
                        try:
                            self.wfile.write(body[i:i + 1])
                            self.wfile.flush()
                        except OSError:  # the client gave up: what the trickle is there to provoke
                            return
                    return
                self.wfile.write(body)
                self.wfile.flush()

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def url_base(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def serve(self, path: str, route: Route) -> None:
        self.routes[path] = route

    def __enter__(self) -> "ModelServer":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.closing.set()
        self.release.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)
