"""Run a command with a real pseudo-terminal as its stdin, stdout and stderr, as a user at a terminal
runs it, and return everything it drew there (carriage returns and all)."""
from __future__ import annotations

import fcntl
import os
import pty
import select
import struct
import subprocess
import termios
import time


def run_in_terminal(args: list[str], *, env: dict, cwd, columns: int = 120, timeout: float = 300) -> tuple[int, str]:
    """(exit status, the raw text the terminal received). The terminal is `columns` wide: a new pty is 0
    columns, where progress bars draw nothing."""
    main, child = pty.openpty()
    fcntl.ioctl(child, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
    process = subprocess.Popen(args, stdin=child, stdout=child, stderr=child, env=env, cwd=cwd, close_fds=True)
    os.close(child)
    received = bytearray()
    deadline = time.monotonic() + timeout
    try:
        while select.select([main], [], [], max(0.0, deadline - time.monotonic()))[0]:
            try:
                chunk = os.read(main, 1 << 16)
            except OSError:  # EIO: every copy of the terminal's other end is closed
                break
            if not chunk:
                break
            received += chunk
        status = process.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        os.close(main)
        if process.poll() is None:
            process.kill()
    return status, received.decode("utf-8", "replace")
