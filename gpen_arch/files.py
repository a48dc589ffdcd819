"""Every file the pack writes goes through here: written under a temporary name beside the target,
flushed to the disk, and only then renamed onto it. A full disk, a missing permission or Ctrl-C
leaves the previous file as it was and no half-written one, and a file that exists is complete.

Lives in gpen_arch, the lowest layer, so that the model writers here and the image and download
writers of gpen_pipeline share it.
"""
from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
from pathlib import Path
from typing import Iterable, Iterator

# Why a write failed, in words, and what the user can do about it.
_REASONS = {
    errno.ENOSPC: ("the disk is full", "free some space and run again"),
    errno.EDQUOT: ("the disk quota is used up", "free some space and run again"),
    errno.EACCES: ("permission denied", "choose a folder you can write to"),
    errno.EPERM: ("permission denied", "choose a folder you can write to"),
    errno.EROFS: ("the file system is read-only", "choose a folder you can write to"),
    errno.EFBIG: ("the file is too large for this file system", "choose another disk"),
}
FULL_DISK = (errno.ENOSPC, errno.EDQUOT)


class WriteError(OSError):
    """A file could not be written; the message names it, says why in words and what to do.
    `errno` is the underlying error's."""


def write_error(path: str | os.PathLike, exc: OSError) -> WriteError:
    """The one-sentence error for `exc` raised while writing `path`."""
    reason, advice = _REASONS.get(exc.errno, (exc.strerror or str(exc), "check the folder and run again"))
    kept = f"; the previous {Path(path).name} is unchanged" if os.path.lexists(path) else ""
    error = WriteError(f"cannot write {path}: {reason}{kept}; {advice}")
    error.errno = exc.errno
    return error


def identity(path: str | os.PathLike) -> tuple[int, int] | None:
    """(device, inode) of the file at `path`, symlinks followed; None when there is none. Paths with
    one identity are one file, whatever their names: a hard link or a symlink to a file is that file."""
    try:
        found = os.stat(path)
    except OSError:
        return None
    return found.st_dev, found.st_ino


def same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """Whether two paths are one existing file (see `identity`)."""
    found = identity(a)
    return found is not None and found == identity(b)


@contextlib.contextmanager
def replacing(path: str | os.PathLike) -> Iterator[Path]:
    """A new, empty temporary file beside `path` for the caller to fill; when the block ends without
    an error it is flushed to the disk and renamed onto `path`, otherwise removed.

    A symlink at `path` stays a link: the file it points to is the one replaced. The new file gets
    the permissions of the one it replaces. OSErrors come out as WriteError naming `path`."""
    target = Path(os.path.realpath(path))
    # Hidden and not ending in an image or model suffix: no folder scan takes an unfinished file.
    temp = target.parent / f".{target.name}.{secrets.token_hex(4)}.tmp"
    made = False
    blocking = next((folder for folder in (target.parent, *target.parent.parents)
                     if os.path.lexists(folder) and not folder.is_dir()), None)
    if blocking is not None:
        raise WriteError(f"cannot write {path}: {blocking} is a file, not a folder; choose another output")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        os.close(os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        made = True
        if target.exists():
            os.chmod(temp, stat.S_IMODE(target.stat().st_mode))
        yield temp
        _sync(temp)
        os.replace(temp, target)
        made = False
    except WriteError:
        raise
    except OSError as exc:
        raise write_error(path, exc) from exc
    finally:
        if made:
            with contextlib.suppress(OSError):
                os.unlink(temp)


def write_bytes(path: str | os.PathLike, data) -> Path:
    """Write `data` (bytes, a buffer such as an encoded numpy array, or an iterable of such chunks)
    to `path` through `replacing`. Returns the path written."""
    try:
        chunks: Iterable = [memoryview(data)]
    except TypeError:
        chunks = data
    with replacing(path) as temp:
        fd = os.open(temp, os.O_WRONLY)
        try:
            for chunk in chunks:
                view = memoryview(chunk).cast("B")
                while view:  # os.write may write less than it is given
                    view = view[os.write(fd, view):]
        finally:
            os.close(fd)
    return Path(path)


def _sync(path: Path) -> None:
    """Flush a file's data to the disk, so that the rename never publishes an incomplete file after
    a power loss."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
