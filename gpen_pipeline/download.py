"""Download a catalogued GPEN model file, verified, without ever leaving a partial file.

Only the standard library is imported, so that ``install.py`` can run this before torch or
numpy exist; only a file without a published hash needs torch, to be read as a GPEN (its
hash, recorded by us, proves nothing about what the server sent). Nothing touches the
network at import.
"""
from __future__ import annotations

import errno
import hashlib
import http.client
import os
import threading
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Union

from .catalog import ModelFile, find_model_file
from .transfer import Limits, Watch

URL_BASE_ENV = "GPEN_MODEL_URL_BASE"
PART_SUFFIX = ".part"
HASH_SUFFIX = ".sha256"
_USER_AGENT = "gpen-comfyui-downloader/1"
# OSErrors that come from our side (the disk), not from the network.
_DISK_ERRNOS = {errno.ENOSPC, errno.EACCES, errno.EROFS, errno.EPERM, getattr(errno, "EDQUOT", errno.ENOSPC)}

ProgressFn = Callable[[int, Optional[int]], None]
PathLike = Union[str, "os.PathLike[str]"]


class DownloadError(RuntimeError):
    """A model file could not be downloaded or verified.

    ``network`` is True when the server could not be reached or stopped answering
    (offline, DNS, refused, timeout), so callers can treat that as "try later".
    """

    def __init__(self, message: str, *, network: bool = False) -> None:
        super().__init__(message)
        self.network = network


class DownloadCancelled(DownloadError):
    """The download was cancelled on request; nothing was kept."""


@dataclass(frozen=True)
class DownloadResult:
    path: Path
    sha256: str
    bytes: int
    downloaded: bool  # False when a verified copy was already in place


def check_plain_name(name: str) -> None:
    """Refuse anything that is not a bare file name (no folders, no '..')."""
    if (
        not isinstance(name, str)
        or not name
        or "/" in name
        or "\\" in name
        or ".." in name
        or "\x00" in name
        or name.startswith(".")
    ):
        raise ValueError(
            f"Model name {name!r} must be a plain file name such as 'GPEN-BFR-512.pth' "
            "(no folders, no '..')."
        )


def resolve_url(model: ModelFile, url_base: Optional[str] = None) -> str:
    """The URL to fetch: ``<base>/<name>`` when a mirror base is given or set in
    the environment (GPEN_MODEL_URL_BASE), else the catalogued URL."""
    base = url_base if url_base is not None else os.environ.get(URL_BASE_ENV, "")
    url = f"{base.rstrip('/')}/{model.name}" if base.strip() else model.url
    scheme = urllib.parse.urlsplit(url).scheme.lower()
    if scheme not in ("http", "https"):
        raise ValueError(f"Model URL {url!r} must start with http:// or https://.")
    return url


def sha256_of(source: Union[bytes, PathLike], chunk_size: int = 1 << 20) -> str:
    """The hex sha256 of `source`: bytes as they are, a path as its file's contents read block by block."""
    digest = hashlib.sha256()
    if isinstance(source, bytes):
        digest.update(source)
    else:
        with open(source, "rb") as fh:
            for block in iter(lambda: fh.read(chunk_size), b""):
                digest.update(block)
    return digest.hexdigest()


def download_model(name: str, dest_dir: PathLike, **options) -> DownloadResult:
    """Fetch the catalogued model ``name`` into ``dest_dir``; ``options`` and the result as :func:`download_file`.

    A name that is not a plain catalogued file name raises ValueError before any I/O.
    """
    check_plain_name(name)
    return download_file(find_model_file(name), dest_dir, **options)


def download_file(
    model: ModelFile,
    dest_dir: PathLike,
    *,
    url_base: Optional[str] = None,
    progress: Optional[ProgressFn] = None,
    timeout: float = 60,
    overwrite: bool = False,
    chunk_size: int = 1 << 20,
    limits: Limits = Limits(),
    cancel: Optional[threading.Event] = None,
) -> DownloadResult:
    """Download ``model`` to ``dest_dir/model.name``, verified.

    Streams to ``NAME.part`` and checks it before renaming it atomically: the byte count against
    the HTTP Content-Length and the catalogue, then the sha256 where one is published, or else
    that the file reads (weights only, no code run) as a complete GPEN of the resolution its name
    says; the computed sha256 of such a file is recorded in ``NAME.sha256``. ``timeout`` bounds
    each read, ``limits`` the whole transfer (deadline, minimum throughput); setting ``cancel``
    stops it within a fraction of a second and raises DownloadCancelled. On any failure the
    ``.part`` is removed and nothing is left where the model belongs.
    ``progress(done_bytes, total_bytes_or_None)`` is called after every read. An existing model
    is checked the same way and kept unless ``overwrite`` is True (see :func:`_verify_existing`).
    """
    check_plain_name(model.name)
    url = resolve_url(model, url_base)
    dest = Path(dest_dir)
    target = dest / model.name
    if target.exists() and not overwrite:
        return _verify_existing(model, target, url)

    dest.mkdir(parents=True, exist_ok=True)
    part = dest / (model.name + PART_SUFFIX)
    try:
        done = _fetch_to(part, model, url, dest, progress, timeout, chunk_size, Watch(limits, cancel))
        digest = sha256_of(part)  # what reached the disk, read back once it is complete
        _check_hash(model, digest, url, dest)
        problem = None if model.sha256 else not_the_model(part, model, "The download")
        if problem is not None:
            raise _fail(model, url, dest, _clause(problem))
        if cancel is not None and cancel.is_set():  # cancelled while the file was being checked
            raise _cancelled(model, dest)
        if model.sha256 is None:
            _write_hash_file(dest / (model.name + HASH_SUFFIX), digest, model.name)
        os.replace(part, target)
    except BaseException:
        # KeyboardInterrupt included: a half-written model must never survive.
        _remove_quietly(part)
        raise
    return DownloadResult(path=target, sha256=digest, bytes=done, downloaded=True)


def not_the_model(path: Path, model: ModelFile, label: str = "Model file") -> Optional[str]:
    """Why the file at `path` is not the GPEN `model` names, as the loader would say it; None when
    it is one: weights that read (weights only, or safetensors; nothing in the file runs) as a
    complete GPEN, finite, of the resolution the catalogue name says. For files without a
    published hash, where nothing else can tell a model from whatever the server sent."""
    try:
        from gpen_arch import RELEASED, ModelLoadError
        from gpen_arch.checkpoint import read_weights
        from gpen_arch.loader import checked_config
    except ImportError as exc:
        return (f"{model.name} has no published hash, so it must be read as a GPEN to be trusted, and that "
                f"needs {exc.name or 'torch'}, which is not installed: install ComfyUI's requirements first")
    try:
        weights = read_weights(path, label, suffix=Path(model.name).suffix)
        config = checked_config(weights, f"{label} {path.name}")
    except ModelLoadError as exc:
        return str(exc)
    released = RELEASED.get(Path(model.name).stem)  # every catalogued file has one (tests/test_download.py)
    if released is not None and config.size != released.size:
        return f"{label} {path.name} is a GPEN-{config.size}, not the GPEN-{released.size} that {model.name} is"
    return None


def _clause(sentence: str) -> str:
    """A sentence of the loader's, to go inside one of ours ("Model file X ..." -> "model file X ...")."""
    sentence = sentence.strip().rstrip(".")
    first = sentence.split(" ", 1)[0]
    return sentence[:1].lower() + sentence[1:] if first[1:].islower() else sentence  # never "gPEN-..."


def _remove_quietly(path: Path) -> None:
    # Cleanup must never hide the error that made it necessary.
    try:
        path.unlink(missing_ok=True)
    except OSError:
        pass


def _fail(model: ModelFile, url: str, dest: Path, what: str, *, network: bool = False) -> DownloadError:
    return DownloadError(
        f"Could not download {model.name} from {url}: {what}. "
        f"Download it by hand from {url} into {dest}, or set {URL_BASE_ENV} to a mirror.",
        network=network,
    )


def _fetch_to(
    part: Path,
    model: ModelFile,
    url: str,
    dest: Path,
    progress: Optional[ProgressFn],
    timeout: float,
    chunk_size: int,
    watch: Watch,
) -> int:
    """Stream `url` into `part` under `watch`'s limits; the number of bytes written."""
    try:
        with watch:
            done, announced = _stream(part, model, url, dest, progress, timeout, chunk_size, watch)
    except DownloadError:
        raise
    except urllib.error.HTTPError as exc:
        raise _fail(model, url, dest, f"HTTP {exc.code} {exc.reason}") from exc
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        # A connection the watch shut down breaks off in any of these ways: its reason comes first.
        raise _ended(model, url, dest, watch) or _broken(model, url, dest, part, timeout, exc) from exc
    stopped = _ended(model, url, dest, watch)
    if stopped is not None:
        raise stopped
    if announced is not None and done != announced:
        raise _fail(model, url, dest, f"the transfer stopped after {done} of {announced} bytes")
    if model.size_bytes is not None and done != model.size_bytes:
        raise _fail(model, url, dest, f"got {done} bytes, expected {model.size_bytes}")
    return done


def _stream(part: Path, model: ModelFile, url: str, dest: Path, progress: Optional[ProgressFn],
            timeout: float, chunk_size: int, watch: Watch) -> tuple[int, Optional[int]]:
    """(bytes written, Content-Length or None)."""
    request = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT})
    done = 0
    with watch.open(request, timeout) as response:
        content_type = response.headers.get("Content-Type", "")
        if content_type.lower().startswith("text/html"):
            # Mirrors answer a login or error page with status 200; never save it as a model.
            raise _fail(model, url, dest, "the server sent a web page, not the model file")
        announced = _content_length(response)
        if announced is not None and model.size_bytes is not None and announced != model.size_bytes:
            raise _fail(
                model, url, dest,
                f"the server offers {announced} bytes but the file has "
                f"{model.size_bytes} bytes (wrong or changed file)",
            )
        total = announced if announced is not None else model.size_bytes
        with open(part, "wb") as out:
            # read1: whatever has arrived, so that a slow but steady server is seen to progress.
            while block := response.read1(chunk_size):
                out.write(block)
                done += len(block)
                watch.done = done
                if progress is not None:
                    progress(done, total)
            out.flush()
            os.fsync(out.fileno())
    return done, announced


def _ended(model: ModelFile, url: str, dest: Path, watch: Watch) -> Optional[DownloadError]:
    """The error for a transfer the watch ended (a cancel, the deadline, a stall), else None."""
    if watch.reason is None:
        return None
    if watch.cancelled:
        return _cancelled(model, dest)
    return _fail(model, url, dest, watch.reason, network=True)


def _cancelled(model: ModelFile, dest: Path) -> DownloadCancelled:
    return DownloadCancelled(f"Download of {model.name} cancelled; nothing was kept in {dest}.")


def _broken(model: ModelFile, url: str, dest: Path, part: Path, timeout: float, exc: BaseException) -> DownloadError:
    if isinstance(exc, urllib.error.URLError):
        # The system's words ("Name or service not known"), without Python's "[Errno -2]" in front.
        reason = getattr(exc.reason, "strerror", None) or exc.reason
        return _fail(model, url, dest, f"cannot reach the server ({reason})", network=True)
    if isinstance(exc, TimeoutError):
        return _fail(model, url, dest, f"no data for {timeout:g} s (timed out)", network=True)
    if isinstance(exc, OSError) and (exc.filename is not None or exc.errno in _DISK_ERRNOS):
        return _fail(model, url, dest, f"cannot write {part} ({exc.strerror or exc})")
    if isinstance(exc, OSError):
        return _fail(model, url, dest, f"the transfer broke off ({exc.strerror or type(exc).__name__})", network=True)
    return _fail(model, url, dest, f"the server sent a malformed response ({type(exc).__name__})", network=True)


def _content_length(response: http.client.HTTPResponse) -> Optional[int]:
    value = response.headers.get("Content-Length")
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _check_hash(model: ModelFile, digest: str, url: str, dest: Path) -> None:
    if model.sha256 is not None and digest != model.sha256.lower():
        raise _fail(model, url, dest, f"sha256 {digest} does not match the expected {model.sha256}")


def _write_hash_file(path: Path, digest: str, name: str) -> None:
    # sha256sum's format, so `sha256sum -c NAME.sha256` works; written atomically.
    tmp = path.with_name(path.name + PART_SUFFIX)
    try:
        tmp.write_text(f"{digest}  {name}\n", encoding="ascii")
        os.replace(tmp, path)
    except BaseException:
        _remove_quietly(tmp)
        raise


def _read_hash_file(path: Path) -> Optional[str]:
    try:
        first = path.read_text(encoding="ascii").split()
    except (OSError, UnicodeDecodeError):
        return None
    return first[0].lower() if first else None


def _verify_existing(model: ModelFile, target: Path, url: str) -> DownloadResult:
    """Keep an existing model if it is what `model` names; never overwrite it.

    Only a published size and hash prove a file. Our own NAME.sha256 can only tell that the file
    changed since we recorded it, never that it is good: without a published hash the file must
    also read as the GPEN its name says, as a new download must."""
    size = target.stat().st_size
    dest = target.parent
    advice = f"delete {target} (or pass overwrite=True) and download again from {url}"
    if model.size_bytes is not None and size != model.size_bytes:
        raise DownloadError(
            f"{target} has {size} bytes but {model.name} has {model.size_bytes}; "
            f"it is incomplete or a different file: {advice}."
        )
    digest = sha256_of(target)
    expected = model.sha256 or _read_hash_file(dest / (model.name + HASH_SUFFIX))
    if expected is not None and digest != expected.lower():
        raise DownloadError(
            f"{target} has sha256 {digest} but {expected} was expected; "
            f"it is corrupted or a different file: {advice}."
        )
    if model.sha256 is None:
        problem = not_the_model(target, model)
        if problem is not None:
            raise DownloadError(f"{target} is already there but is not a usable {model.name} "
                                f"({_clause(problem)}): {advice}.")
    return DownloadResult(path=target, sha256=digest, bytes=size, downloaded=False)
