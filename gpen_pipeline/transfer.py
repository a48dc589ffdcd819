"""Limits on one HTTP transfer that no server can outlast: an overall deadline, a minimum
throughput over a sliding window, and cancellation from another thread.

The per-read socket timeout alone is not enough: a server that sends one byte a second never trips
it. Nor can a flag or a clock wake a read that is blocked in the socket, so a watcher thread shuts
the socket down when a limit is reached, which ends that read at once. Standard library only.
"""
from __future__ import annotations

import math
import socket
import threading
import time
import urllib.request
from collections import deque
from dataclasses import dataclass
from typing import Callable, Optional

# A 300 MB model needs about 28 kB/s on average to finish within the deadline.
DEADLINE_S = 3 * 3600.0
# Fewer bytes than MIN_RATE * STALL_WINDOW_S within any STALL_WINDOW_S seconds is a stall.
STALL_WINDOW_S = 60.0
MIN_RATE = 10_000.0  # bytes per second
# How often the watcher looks: how late a cancel or a limit can take effect.
_TICK_S = 0.05


@dataclass(frozen=True)
class Limits:
    deadline: float = DEADLINE_S  # seconds for the whole transfer, from the request on
    stall_window: float = STALL_WINDOW_S  # seconds
    min_rate: float = MIN_RATE  # bytes per second, averaged over stall_window

    def __post_init__(self) -> None:
        for name, value in (("deadline", self.deadline), ("stall window", self.stall_window),
                            ("minimum rate", self.min_rate)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < math.inf:
                raise ValueError(f"The download {name} must be a positive, finite number, not {value!r}.")


class Watch:
    """Use as a context manager around one transfer; open the request with :meth:`open` and set
    ``done`` to the bytes received so far. Once a limit is reached (or ``cancel`` is set) ``reason``
    says which, ``cancelled`` tells a cancel from a limit, and the connection is shut down."""

    def __init__(self, limits: Limits, cancel: Optional[threading.Event] = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.limits = limits
        self.done = 0
        self.reason: Optional[str] = None
        self.cancelled = False
        self._cancel = cancel or threading.Event()
        self._clock = clock
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="gpen-download-watch", daemon=True)

    def __enter__(self) -> "Watch":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def open(self, request: urllib.request.Request, timeout: float):
        """urlopen through connections the watcher can shut down (redirects and proxies included)."""
        handlers = [_HttpHandler(self._attach)]
        if _HttpsHandler is not None:
            handlers.append(_HttpsHandler(self._attach))
        return urllib.request.build_opener(*handlers).open(request, timeout=timeout)

    def _attach(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.append(sock)
            if self.reason is not None:  # ended before this connection was made
                _shut(sock)

    def _end(self, reason: str, cancelled: bool = False) -> None:
        with self._lock:
            self.reason, self.cancelled = reason, cancelled
            for sock in self._sockets:
                _shut(sock)

    def _run(self) -> None:
        start = self._clock()
        samples: deque[tuple[float, int]] = deque([(start, 0)])
        limits = self.limits
        while not self._stop.wait(_TICK_S):
            now, done = self._clock(), self.done
            if self._cancel.is_set():
                return self._end("cancelled", cancelled=True)
            if now - start > limits.deadline:
                return self._end(f"the transfer took longer than the {limits.deadline:g} s allowed for a whole "
                                 f"download ({done} bytes received)")
            samples.append((now, done))
            # Keep the newest sample that is at least one window old: the window's starting point.
            while len(samples) > 1 and samples[1][0] <= now - limits.stall_window:
                samples.popleft()
            since, then = samples[0]
            if now - since >= limits.stall_window and done - then < limits.min_rate * limits.stall_window:
                return self._end(f"the transfer stalled ({done - then} bytes in the last {limits.stall_window:g} s, "
                                 f"below the minimum of {limits.min_rate:g} bytes/s)")


def _shut(sock: socket.socket) -> None:
    # The plain socket's shutdown (not SSLSocket's, which also drops its TLS state under a reader):
    # the blocked read returns at once and the server sees the connection close.
    try:
        socket.socket.shutdown(sock, socket.SHUT_RDWR)
    except OSError:
        pass  # already closed


class _WatchedOpen:
    """A urllib handler whose connections hand their socket to the watch once connected."""

    def __init__(self, attach: Callable[[socket.socket], None]) -> None:
        super().__init__()
        self._attach = attach

    def do_open(self, http_class, request, **kwargs):
        attach = self._attach

        class Watched(http_class):
            def connect(self) -> None:
                super().connect()
                attach(self.sock)

        return super().do_open(Watched, request, **kwargs)


class _HttpHandler(_WatchedOpen, urllib.request.HTTPHandler):
    pass


# urllib has no HTTPSHandler in a Python built without ssl: http only, then.
_HttpsHandler = (type("_HttpsHandler", (_WatchedOpen, urllib.request.HTTPSHandler), {})
                 if hasattr(urllib.request, "HTTPSHandler") else None)
