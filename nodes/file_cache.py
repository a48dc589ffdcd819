"""One cache for everything the nodes build from a file (models, detectors, parsers, model info):
an entry is used only while its file is unchanged, and the least recently used go first."""
from __future__ import annotations

import os
import threading
from collections import OrderedDict
from typing import Any, Callable, Hashable


def file_identity(path: str | os.PathLike) -> tuple[int, int, int, int] | None:
    """What changes when a file is replaced or rewritten, or None when there is no file: an
    equal-sized copy given the old mtime (`cp -p`, unzip) still gets a new inode or ctime,
    which no tool can set back."""
    try:
        stat = os.stat(path)
    except (OSError, ValueError):
        return None
    return stat.st_mtime_ns, stat.st_size, stat.st_ino, stat.st_ctime_ns


class FileCache:
    """Values keyed by what they were built with, each tied to the identity of the file it was read
    from; at most `size` are kept. A hit whose file changed is built again, and building a value
    from a file drops the values of that file's older versions, so two versions are never held."""

    def __init__(self, size: int):
        self.size = size
        self._entries: "OrderedDict[Hashable, tuple[Any, str, tuple | None]]" = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable, build: Callable[[], Any], source_of: Callable[[Any], Any]) -> Any:
        """The cached value for `key`, or `build()`; `source_of(value)` names the file it came from."""
        with self._lock:
            hit = self._entries.get(key)
            if hit is not None and file_identity(hit[1]) == hit[2]:
                self._entries.move_to_end(key)
                return hit[0]
        value = build()
        source = os.path.realpath(str(source_of(value)))
        identity = file_identity(source)
        with self._lock:
            for old in [k for k, (_, path, seen) in self._entries.items() if path == source and seen != identity]:
                del self._entries[old]
            self._entries[key] = (value, source, identity)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)
        return value

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
