"""Small HTTP routes for the pack's editor extension (js/): model info, the model list and downloads.

    GET  /gpen/models                 files in the model folders, the download catalogue, download states
    GET  /gpen/model_info?name=FILE   what a listed file is, read from its tensors (nothing is built)
    POST /gpen/download {"name": N}   fetch catalogue file N into models/facerestore, in a thread
    POST /gpen/download_cancel {"name": N}  stop that download; answers once it has stopped
    GET  /gpen/download_status?name=N the last progress/done/error/cancelled message of that download

ComfyUI also serves each under /api/... . Download progress goes to the browser as websocket
messages of type "gpen.download": {"name", "state": progress|done|error|cancelled, ...}.
Requests never name paths: a model is one of the listed files or catalogue names, nothing else.
"""
from __future__ import annotations

import asyncio
import functools
import logging
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

from aiohttp import web

import folder_paths

import gpen_arch
from gpen_pipeline import catalog, download

from . import common
from .file_cache import FileCache

LOG = logging.getLogger("GPEN")

DOWNLOAD_EVENT = "gpen.download"
DOWNLOAD_FOLDER = "facerestore"
# Small reads so that the progress bar moves even on a fast local mirror.
DOWNLOAD_CHUNK = 64 * 1024
PROGRESS_INTERVAL_S = 0.25
MAX_NAME_LENGTH = 512
# A cancelled transfer stops within a fraction of a second; this only bounds the wait for a thread
# that is busy elsewhere (reading back a large file's hash).
CANCEL_WAIT_S = 30.0

_INFO_CACHE = FileCache(size=32)
_LAST_STATE: dict[str, dict] = {}
_DOWNLOAD_LOCK = threading.Lock()

Send = Callable[[dict], None]


class RequestError(Exception):
    """A request we refuse; becomes an HTTP 4xx with {"error": message}."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def refused_as_4xx(handler):
    """A route whose RequestError becomes its answer: the status and {"error": message}."""
    @functools.wraps(handler)
    async def route(request: web.Request) -> web.Response:
        try:
            return await handler(request)
        except RequestError as exc:
            return web.json_response({"ok": False, "error": str(exc)}, status=exc.status)
    return route


# --------------------------------------------------------------------------- model info


def check_listed_name(name: object) -> str:
    """`name` if it is one of the files the loader lists; RequestError otherwise."""
    if not isinstance(name, str) or not name.strip():
        raise RequestError(400, "Give the model file with ?name=FILE (a file from the GPEN model list).")
    if len(name) > MAX_NAME_LENGTH or common.name_leaves_folders(name):
        raise RequestError(400, f"'{name[:80]}' is not a file name from the GPEN model list; "
                                "paths are not accepted.")
    if name not in common.list_model_files():
        raise RequestError(404, f"'{name}' is not in the GPEN model folders "
                                f"({', '.join(common.RESTORER_FOLDERS)}); refresh the node list.")
    return name


def licence_note(file_name: str) -> str:
    for entry in catalog.MODEL_FILES:
        if entry.name == file_name:
            return entry.licence_note
    if file_name.lower().endswith(".onnx"):
        return catalog.ONNX_LICENCE
    return "If this file derives from the released GPEN weights: " + catalog.GPEN_LICENCE


def recorded_sha256(path: str) -> Optional[str]:
    """The sha256 the downloader wrote beside the file (NAME.sha256), if any."""
    try:
        with open(path + download.HASH_SUFFIX, encoding="ascii") as fh:
            words = fh.read().split()
    except (OSError, UnicodeDecodeError):
        return None
    digest = words[0].lower() if words else ""
    return digest if len(digest) == 64 and all(c in "0123456789abcdef" for c in digest) else None


def describe_file(path: str) -> dict:
    """What the file at `path` is, as JSON; a file that is not a usable GPEN gets ok=False and the
    loader's sentence. Cached while the file is unchanged: a replaced file is read again, even an
    equal-sized copy that kept the old mtime."""
    return _INFO_CACHE.get(os.path.realpath(path), lambda: _describe(path), lambda info: path)


def _describe(path: str) -> dict:
    name = os.path.basename(path)
    info: dict = {"file": name, "file_bytes": os.path.getsize(path), "licence": licence_note(name),
                  "sha256": recorded_sha256(path)}
    try:
        described = gpen_arch.describe(path)
    except gpen_arch.ModelLoadError as exc:
        info.update(ok=False, error=exc.plain)  # never the start of a file that is not a model
    except Exception as exc:  # a file we cannot even read must not break the editor
        LOG.warning("[GPEN] could not describe %s: %r", path, exc)
        info.update(ok=False, error=f"Model file {name} could not be read ({exc}); get it again.")
    else:
        info.update(ok=True, **{k: v for k, v in described.to_json().items() if k not in ("file", "file_bytes")})
    return info


# --------------------------------------------------------------------------- downloads


@dataclass
class Job:
    """A running download: set `cancel` to stop it; `finished` is set once its thread is done."""

    cancel: threading.Event = field(default_factory=threading.Event)
    finished: threading.Event = field(default_factory=threading.Event)


_RUNNING: dict[str, Job] = {}


def download_folder() -> str:
    """The primary facerestore folder (models/facerestore unless the user configured another first)."""
    return folder_paths.get_folder_paths(DOWNLOAD_FOLDER)[0]


def check_catalogue_name(name: object) -> str:
    if not isinstance(name, str):
        raise RequestError(400, "Send {\"name\": FILE} with a file name from the GPEN download list.")
    try:
        download.check_plain_name(name)
        catalog.find_model_file(name)
    except ValueError as exc:
        raise RequestError(400, str(exc)) from None
    return name


def progress_reporter(name: str, send: Send, clock: Callable[[], float] = time.monotonic,
                      interval: float = PROGRESS_INTERVAL_S) -> Callable[[int, Optional[int]], None]:
    """A downloader progress callback that sends a message per whole percent (or per `interval`
    seconds when the size is unknown), so a large file does not flood the websocket."""
    last = {"percent": -1, "time": -interval}

    def report(done: int, total: Optional[int]) -> None:
        now = clock()
        percent = int(100 * done / total) if total else -1
        unchanged = percent == last["percent"] if total else now - last["time"] < interval
        if unchanged:
            return
        last.update(percent=percent, time=now)
        send({"name": name, "state": "progress", "done": done, "total": total})

    return report


def run_download(name: str, dest: str, send: Send, url_base: Optional[str] = None,
                 cancel: Optional[threading.Event] = None) -> dict:
    """Download catalogue file `name` into `dest`, reporting through `send`; returns the final message.

    The downloader writes NAME.part and renames it only once it is checked (published hash, or
    read as the GPEN its name says), so a failure or a cancel leaves nothing where the model belongs."""
    try:
        result = download.download_model(name, dest, url_base=url_base, progress=progress_reporter(name, send),
                                         chunk_size=DOWNLOAD_CHUNK, cancel=cancel)
    except download.DownloadCancelled as exc:
        final = {"name": name, "state": "cancelled", "message": str(exc)}
    except (download.DownloadError, ValueError, OSError) as exc:
        final = {"name": name, "state": "error", "message": str(exc)}
    except Exception as exc:
        LOG.exception("[GPEN] download of %s failed", name)
        final = {"name": name, "state": "error", "message": f"Downloading {name} failed unexpectedly: {exc!r}"}
    else:
        recorded = recorded_sha256(str(result.path))
        final = {"name": name, "state": "done", "bytes": result.bytes, "sha256": result.sha256,
                 "hash_checked": catalog.find_model_file(name).sha256 is not None,
                 "sha256_file": (name + download.HASH_SUFFIX) if recorded else None,
                 "already_present": not result.downloaded}
    send(final)
    return final


def start_download(name: str, dest: str, send: Send) -> bool:
    """Start `name` in a background thread; False when that name is already downloading."""
    job = Job()
    with _DOWNLOAD_LOCK:
        if name in _RUNNING:
            return False
        _RUNNING[name] = job
        _LAST_STATE[name] = {"name": name, "state": "started"}

    def work() -> None:
        try:
            run_download(name, dest, send, cancel=job.cancel)
        finally:
            with _DOWNLOAD_LOCK:
                _RUNNING.pop(name, None)
            job.finished.set()  # after the name is free: whoever waited can start it again

    threading.Thread(target=work, name=f"gpen-download-{name}", daemon=True).start()
    return True


def cancel_download(name: str, wait: float = CANCEL_WAIT_S) -> Optional[tuple[bool, dict]]:
    """Stop the download of `name` and wait (up to `wait` s) for its thread: (whether it stopped,
    its last message), or None when it was not running."""
    with _DOWNLOAD_LOCK:
        job = _RUNNING.get(name)
    if job is None:
        return None
    job.cancel.set()
    stopped = job.finished.wait(wait)
    with _DOWNLOAD_LOCK:
        return stopped, dict(_LAST_STATE.get(name, {"name": name, "state": "started"}))


def websocket_sender(server) -> Send:
    def send(message: dict) -> None:
        with _DOWNLOAD_LOCK:
            _LAST_STATE[message["name"]] = message
        server.send_sync(DOWNLOAD_EVENT, message)  # thread-safe; no sid: every open editor sees it

    return send


# --------------------------------------------------------------------------- registration


def register(server) -> None:
    """Add the routes to ComfyUI's PromptServer (before it starts; once per server)."""
    if getattr(server, "_gpen_routes", False):
        return
    server._gpen_routes = True
    routes = server.routes
    send = websocket_sender(server)

    @routes.get("/gpen/models")
    async def models(request: web.Request) -> web.Response:
        with _DOWNLOAD_LOCK:
            states = dict(_LAST_STATE)
        return web.json_response({
            "files": common.list_model_files(),
            "folders": list(common.RESTORER_FOLDERS),
            "default": catalog.DEFAULT_MODEL,
            "catalog": [{"name": m.name, "kind": m.kind, "size_bytes": m.size_bytes,
                         "hash_known": m.sha256 is not None} for m in catalog.MODEL_FILES],
            "downloads": states,
        })

    @routes.get("/gpen/model_info")
    @refused_as_4xx
    async def model_info(request: web.Request) -> web.Response:
        name = check_listed_name(request.query.get("name"))
        path = common.resolve_model_path(name)
        if path is None:
            raise RequestError(404, common.missing_model_message(name))
        info = await asyncio.get_running_loop().run_in_executor(None, describe_file, path)
        return web.json_response({"name": name, **info})

    async def posted_name(request: web.Request) -> str:
        try:
            body = await request.json()
        except ValueError:
            body = None
        return check_catalogue_name(body.get("name") if isinstance(body, dict) else None)

    @routes.post("/gpen/download")
    @refused_as_4xx
    async def start(request: web.Request) -> web.Response:
        name = await posted_name(request)
        if not start_download(name, download_folder(), send):
            raise RequestError(409, f"{name} is already downloading; wait for it to finish or cancel it.")
        return web.json_response({"ok": True, "name": name, "state": "started"}, status=202)

    @routes.post("/gpen/download_cancel")
    @refused_as_4xx
    async def cancel(request: web.Request) -> web.Response:
        name = await posted_name(request)
        outcome = await asyncio.get_running_loop().run_in_executor(None, cancel_download, name)
        if outcome is None:
            raise RequestError(409, f"{name} is not downloading; there is nothing to cancel.")
        stopped, state = outcome
        # 202 while the thread is still finishing: its final message follows on the websocket.
        return web.json_response({"ok": True, **state}, status=200 if stopped else 202)

    @routes.get("/gpen/download_status")
    @refused_as_4xx
    async def status(request: web.Request) -> web.Response:
        name = check_catalogue_name(request.query.get("name"))
        with _DOWNLOAD_LOCK:
            state = _LAST_STATE.get(name, {"name": name, "state": "idle"})
            running = name in _RUNNING
        return web.json_response({**state, "running": running})


def register_with_comfy() -> None:
    """Register on the running PromptServer; outside a server (no instance yet) there is nothing to do."""
    try:
        from server import PromptServer
    except ImportError:
        return
    instance = getattr(PromptServer, "instance", None)
    if instance is None:
        LOG.info("[GPEN] no ComfyUI server object yet; the editor routes are not registered")
        return
    register(instance)
