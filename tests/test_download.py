"""gpen_pipeline.download and gpen_pipeline.catalog against a real local HTTP server."""
from __future__ import annotations

import hashlib
import io
import json
import pickle
import random
import re
import socket
import threading
import time
from pathlib import Path

import pytest
import torch

from fixture_files import S64_MODEL_FILE, S256_MODEL_FILE, small_config, small_gpen
from gpen_pipeline import catalog, download
from gpen_pipeline.catalog import ModelFile
from gpen_pipeline.download import DownloadCancelled, DownloadError, download_file, download_model
from gpen_pipeline.transfer import Limits
from helpers.http_model_server import ModelServer, Route

PAYLOAD = random.Random(20240512).randbytes(200_000)
PAYLOAD_SHA = hashlib.sha256(PAYLOAD).hexdigest()
# A real GPEN-256 layout (random weights): what GPEN-BFR-256.pth, which has no published hash, must be.
GPEN_256 = S256_MODEL_FILE.read_bytes()


@pytest.fixture(autouse=True)
def _local_only(monkeypatch):
    # A proxy from the environment must not swallow requests to 127.0.0.1.
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.delenv(download.URL_BASE_ENV, raising=False)


@pytest.fixture
def server():
    with ModelServer() as srv:
        yield srv


@pytest.fixture(scope="module")
def gpen_1024() -> bytes:
    """A small GPEN in the real 1024 px layout: what GPEN-BFR-1024.pth (no published hash) must be."""
    return small_gpen(0, small_config(1024))[0]


def entry(server: ModelServer, name: str = "GPEN-BFR-512.pth", *, size=len(PAYLOAD), sha=PAYLOAD_SHA) -> ModelFile:
    return ModelFile(name=name, url=f"{server.url_base}/{name}", size_bytes=size, sha256=sha,
                     kind="bfr", licence_note="test")


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


# --------------------------------------------------------------------------- success


def test_good_download_verifies_and_reports_increasing_progress(server, tmp_path):
    server.serve("/GPEN-BFR-512.pth", Route(body=PAYLOAD))
    calls = []
    result = download_file(entry(server), tmp_path / "models", chunk_size=16_384,
                           progress=lambda done, total: calls.append((done, total)))

    target = tmp_path / "models" / "GPEN-BFR-512.pth"
    assert result.path == target and result.downloaded
    assert target.read_bytes() == PAYLOAD
    assert result.sha256 == PAYLOAD_SHA and result.bytes == len(PAYLOAD)
    # Hash known: no sidecar, and nothing else left in the folder.
    assert leftovers(tmp_path / "models") == ["GPEN-BFR-512.pth"]
    done = [d for d, _ in calls]
    assert len(calls) >= 10 and done == sorted(set(done))
    assert calls[-1] == (len(PAYLOAD), len(PAYLOAD))


def test_sha256_of_bytes_and_of_a_file_read_in_blocks_agree(tmp_path):
    data = random.Random(3).randbytes(100_003)
    (tmp_path / "blob").write_bytes(data)
    expected = hashlib.sha256(data).hexdigest()
    assert download.sha256_of(data) == expected
    assert download.sha256_of(tmp_path / "blob", chunk_size=4096) == expected
    assert download.sha256_of(str(tmp_path / "blob")) == expected


def test_unknown_hash_writes_sidecar_with_the_computed_hash(server, tmp_path):
    # The real catalogue entry for GPEN-BFR-256.pth has no published size or hash.
    assert catalog.find_model_file("GPEN-BFR-256.pth").sha256 is None
    server.serve("/GPEN-BFR-256.pth", Route(body=GPEN_256))
    result = download_model("GPEN-BFR-256.pth", tmp_path, url_base=server.url_base)

    digest = hashlib.sha256(GPEN_256).hexdigest()
    assert (tmp_path / "GPEN-BFR-256.pth").read_bytes() == GPEN_256
    assert (tmp_path / "GPEN-BFR-256.pth.sha256").read_text() == f"{digest}  GPEN-BFR-256.pth\n"
    assert result.sha256 == digest
    assert leftovers(tmp_path) == ["GPEN-BFR-256.pth", "GPEN-BFR-256.pth.sha256"]


def test_url_base_comes_from_the_environment(server, tmp_path, monkeypatch, gpen_1024):
    server.serve("/GPEN-Inpainting-1024.pth", Route(body=gpen_1024))
    monkeypatch.setenv(download.URL_BASE_ENV, server.url_base + "/")
    download_model("GPEN-Inpainting-1024.pth", tmp_path)
    assert server.requests == ["/GPEN-Inpainting-1024.pth"]
    assert (tmp_path / "GPEN-Inpainting-1024.pth").read_bytes() == gpen_1024


def test_download_without_content_length_still_checks_size_and_hash(server, tmp_path):
    server.serve("/GPEN-BFR-512.pth", Route(body=PAYLOAD, content_length=False))
    result = download_file(entry(server), tmp_path)
    assert result.path.read_bytes() == PAYLOAD


# --------------------------------------------------------------------------- failures leave nothing


def assert_refused(exc: DownloadError, folder: Path, url: str, name: str = "GPEN-BFR-512.pth") -> None:
    message = str(exc)
    assert name in message and url in message and "by hand" in message and str(folder) in message
    assert "\n" not in message
    assert leftovers(folder) == []


def test_truncated_body_is_refused(server, tmp_path):
    server.serve("/GPEN-BFR-512.pth", Route(body=PAYLOAD, send_bytes=120_000))
    model = entry(server, size=None, sha=None)
    with pytest.raises(DownloadError) as info:
        download_file(model, tmp_path)
    assert "120000 of 200000" in str(info.value) and not info.value.network
    assert_refused(info.value, tmp_path, model.url)


def test_size_announced_differently_from_catalogue_is_refused_before_the_body(server, tmp_path):
    server.serve("/GPEN-BFR-512.pth", Route(body=PAYLOAD))
    model = entry(server, size=len(PAYLOAD) + 1, sha=None)
    seen = []
    with pytest.raises(DownloadError) as info:
        download_file(model, tmp_path, progress=lambda d, t: seen.append(d))
    assert str(len(PAYLOAD) + 1) in str(info.value) and seen == []
    assert_refused(info.value, tmp_path, model.url)


def test_wrong_size_without_content_length_is_refused(server, tmp_path):
    server.serve("/GPEN-BFR-512.pth", Route(body=PAYLOAD, content_length=False))
    model = entry(server, size=len(PAYLOAD) - 1, sha=None)
    with pytest.raises(DownloadError) as info:
        download_file(model, tmp_path)
    assert f"got {len(PAYLOAD)} bytes" in str(info.value)
    assert_refused(info.value, tmp_path, model.url)


def test_real_catalogue_size_refuses_a_small_file_served_as_gpen_512(server, tmp_path):
    server.serve("/GPEN-BFR-512.pth", Route(body=PAYLOAD))
    with pytest.raises(DownloadError) as info:
        download_model("GPEN-BFR-512.pth", tmp_path, url_base=server.url_base)
    assert "284085738" in str(info.value)
    assert_refused(info.value, tmp_path, f"{server.url_base}/GPEN-BFR-512.pth")


def test_wrong_hash_is_refused(server, tmp_path):
    server.serve("/GPEN-BFR-512.pth", Route(body=PAYLOAD))
    other = hashlib.sha256(b"another file").hexdigest()
    model = entry(server, sha=other)
    with pytest.raises(DownloadError) as info:
        download_file(model, tmp_path)
    assert PAYLOAD_SHA in str(info.value) and other in str(info.value)
    assert_refused(info.value, tmp_path, model.url)


def test_html_page_instead_of_the_model_is_refused(server, tmp_path):
    # e.g. a mirror's login page answered with status 200 for a file of unknown size and hash
    server.serve("/GPEN-BFR-1024.pth", Route(body=b"<html>sign in</html>", content_type="text/html; charset=utf-8"))
    with pytest.raises(DownloadError, match="web page") as info:
        download_model("GPEN-BFR-1024.pth", tmp_path, url_base=server.url_base)
    assert_refused(info.value, tmp_path, f"{server.url_base}/GPEN-BFR-1024.pth", "GPEN-BFR-1024.pth")


@pytest.mark.parametrize("status", [404, 500])
def test_http_error_is_refused(server, tmp_path, status):
    server.serve("/GPEN-BFR-512.pth", Route(body=b"nope", status=status))
    model = entry(server)
    with pytest.raises(DownloadError) as info:
        download_file(model, tmp_path)
    assert f"HTTP {status}" in str(info.value) and not info.value.network
    assert_refused(info.value, tmp_path, model.url)


def test_stalled_server_times_out(server, tmp_path):
    server.serve("/GPEN-BFR-512.pth", Route(body=PAYLOAD, stall_after=50_000))
    model = entry(server)
    start = time.monotonic()
    with pytest.raises(DownloadError) as info:
        download_file(model, tmp_path, timeout=1, chunk_size=8192)
    assert time.monotonic() - start < 6
    assert info.value.network and "timed out" in str(info.value)
    assert_refused(info.value, tmp_path, model.url)


def test_unreachable_server_is_a_network_error(tmp_path):
    base = closed_port_url()
    with pytest.raises(DownloadError) as info:
        download_model("GPEN-BFR-256.pth", tmp_path, url_base=base, timeout=2)
    assert info.value.network
    assert_refused(info.value, tmp_path, f"{base}/GPEN-BFR-256.pth", "GPEN-BFR-256.pth")


def test_keyboard_interrupt_removes_the_part_file(server, tmp_path):
    server.serve("/GPEN-BFR-512.pth", Route(body=PAYLOAD))

    def interrupt(done, total):
        assert (tmp_path / "GPEN-BFR-512.pth.part").exists()  # it is really streaming
        if done > 40_000:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        download_file(entry(server), tmp_path, chunk_size=16_384, progress=interrupt)
    assert leftovers(tmp_path) == []


# --------------------------------------------------------------------------- names and existing files


@pytest.mark.parametrize("name", [
    "../GPEN-BFR-512.pth", "sub/GPEN-BFR-512.pth", "..\\GPEN-BFR-512.pth", "/etc/passwd",
    "GPEN-BFR-999.pth", "", ".GPEN-BFR-512.pth", "GPEN-BFR-512.pth/..",
])
def test_bad_or_unknown_names_are_refused_before_any_request(server, tmp_path, name):
    dest = tmp_path / "models"
    with pytest.raises(ValueError):
        download_model(name, dest, url_base=server.url_base)
    assert server.requests == [] and not dest.exists()


def test_path_like_name_in_a_model_record_is_refused(server, tmp_path):
    dest = tmp_path / "models"
    with pytest.raises(ValueError):
        download_file(entry(server, name="../evil.pth"), dest)
    assert server.requests == [] and not dest.exists() and not (tmp_path / "evil.pth").exists()


def test_non_http_url_base_is_refused(server, tmp_path):
    with pytest.raises(ValueError, match="http"):
        download_model("GPEN-BFR-256.pth", tmp_path, url_base="file:///etc")
    assert leftovers(tmp_path) == []


def test_existing_model_is_kept_unless_overwrite(server, tmp_path):
    old = small_gpen(1, small_config(256))[0]
    (tmp_path / "GPEN-BFR-256.pth").write_bytes(old)
    server.serve("/GPEN-BFR-256.pth", Route(body=GPEN_256))

    kept = download_model("GPEN-BFR-256.pth", tmp_path, url_base=server.url_base)
    assert not kept.downloaded and kept.sha256 == hashlib.sha256(old).hexdigest()
    assert (tmp_path / "GPEN-BFR-256.pth").read_bytes() == old and server.requests == []

    new = download_model("GPEN-BFR-256.pth", tmp_path, url_base=server.url_base, overwrite=True)
    assert new.downloaded and (tmp_path / "GPEN-BFR-256.pth").read_bytes() == GPEN_256


def test_failed_overwrite_keeps_the_previous_model(server, tmp_path):
    old = b"a model the user already had"
    (tmp_path / "GPEN-BFR-256.pth").write_bytes(old)
    server.serve("/GPEN-BFR-256.pth", Route(body=PAYLOAD, send_bytes=1000))
    with pytest.raises(DownloadError):
        download_model("GPEN-BFR-256.pth", tmp_path, url_base=server.url_base, overwrite=True)
    assert leftovers(tmp_path) == ["GPEN-BFR-256.pth"]
    assert (tmp_path / "GPEN-BFR-256.pth").read_bytes() == old


def test_existing_incomplete_model_is_reported_not_replaced(server, tmp_path):
    (tmp_path / "GPEN-BFR-512.pth").write_bytes(b"x" * 10)
    with pytest.raises(DownloadError, match="incomplete") as info:
        download_model("GPEN-BFR-512.pth", tmp_path, url_base=server.url_base)
    assert "overwrite=True" in str(info.value)
    assert (tmp_path / "GPEN-BFR-512.pth").read_bytes() == b"x" * 10 and server.requests == []


def test_existing_model_is_checked_against_its_sidecar(server, tmp_path):
    server.serve("/GPEN-BFR-256.pth", Route(body=GPEN_256))
    download_model("GPEN-BFR-256.pth", tmp_path, url_base=server.url_base)
    rotten = bytearray(GPEN_256)
    rotten[len(rotten) // 2] ^= 1  # bit rot in a weight: the file still reads as a GPEN-256
    (tmp_path / "GPEN-BFR-256.pth").write_bytes(rotten)
    with pytest.raises(DownloadError, match="corrupted"):
        download_model("GPEN-BFR-256.pth", tmp_path, url_base=server.url_base)


# --------------------------------------------------------------------------- files without a published hash
# Nothing but the file itself can tell a model from what a server sent instead: it must read, weights
# only, as a complete GPEN of the resolution its name says, before it takes the model's place.


class RunsCode:
    """Unpickling this would create the `marker` file: what a hostile checkpoint does."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def torch_file(obj) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


NOT_MODELS = {
    "a JSON error": (json.dumps({"error": "rate limited", "retry_after": 3600}).encode(), "application/json"),
    "a short JSON error": (b'{"error":"denied"}', "application/json"),
    "a text page": (b"Service temporarily unavailable. Please try again later.\n", "text/plain"),
    "a web page sent as bytes": (b"<!DOCTYPE html><html><body>Sign in</body></html>", "application/octet-stream"),
    "two bytes": (b"ok", "application/octet-stream"),
    "random bytes": (PAYLOAD, "application/octet-stream"),
    "a zip that is no checkpoint": (b"PK\x03\x04" + PAYLOAD[:1000], "application/zip"),
    "a Git LFS pointer": (b"version https://git-lfs.github.com/spec/v1\noid sha256:" + PAYLOAD_SHA.encode()
                          + b"\nsize 284085738\n", "text/plain"),
}


@pytest.mark.parametrize("what", NOT_MODELS)
def test_a_body_that_is_not_a_model_is_refused_where_no_hash_is_published(server, tmp_path, what):
    body, content_type = NOT_MODELS[what]
    server.serve("/GPEN-BFR-1024.pth", Route(body=body, content_type=content_type))
    with pytest.raises(DownloadError) as info:
        download_model("GPEN-BFR-1024.pth", tmp_path, url_base=server.url_base)
    assert not info.value.network  # the server answered; what it sent is wrong
    assert_refused(info.value, tmp_path, f"{server.url_base}/GPEN-BFR-1024.pth", "GPEN-BFR-1024.pth")


def test_a_model_cut_short_with_a_matching_content_length_is_refused(server, tmp_path, gpen_1024):
    # The server announces exactly what it sends, so no byte count can tell: only the file can.
    cut = gpen_1024[: len(gpen_1024) * 2 // 3]
    server.serve("/GPEN-Colorization-1024.pth", Route(body=cut))
    with pytest.raises(DownloadError, match="truncated or corrupt") as info:
        download_model("GPEN-Colorization-1024.pth", tmp_path, url_base=server.url_base)
    assert_refused(info.value, tmp_path, f"{server.url_base}/GPEN-Colorization-1024.pth",
                   "GPEN-Colorization-1024.pth")


def test_a_gpen_of_another_resolution_is_refused(server, tmp_path):
    server.serve("/GPEN-BFR-2048.pth", Route(body=GPEN_256))
    with pytest.raises(DownloadError, match="is a GPEN-256, not the GPEN-2048") as info:
        download_model("GPEN-BFR-2048.pth", tmp_path, url_base=server.url_base)
    assert_refused(info.value, tmp_path, f"{server.url_base}/GPEN-BFR-2048.pth", "GPEN-BFR-2048.pth")


def test_another_kind_of_model_is_refused_by_name(server, tmp_path):
    detector = torch_file({"ClassHead.0.conv1x1.weight": torch.zeros(4, 64, 1, 1),
                           "BboxHead.0.conv1x1.weight": torch.zeros(8, 64, 1, 1)})
    server.serve("/GPEN-BFR-256.pth", Route(body=detector))
    with pytest.raises(DownloadError, match="RetinaFace face detector") as info:
        download_model("GPEN-BFR-256.pth", tmp_path, url_base=server.url_base)
    assert_refused(info.value, tmp_path, f"{server.url_base}/GPEN-BFR-256.pth", "GPEN-BFR-256.pth")


def test_a_download_that_would_run_code_is_refused_and_the_code_never_runs(server, tmp_path):
    marker = tmp_path / "code-ran"
    models = tmp_path / "models"
    server.serve("/GPEN-BFR-256.pth", Route(body=torch_file({"weight": RunsCode(marker)})))
    with pytest.raises(DownloadError, match="could run code") as info:
        download_model("GPEN-BFR-256.pth", models, url_base=server.url_base)
    assert not marker.exists()
    assert_refused(info.value, models, f"{server.url_base}/GPEN-BFR-256.pth", "GPEN-BFR-256.pth")


def test_a_self_recorded_hash_never_vouches_for_what_is_already_there(server, tmp_path):
    # What an earlier download left: a login page saved as the model, with its sha256 recorded beside it.
    page = b"<html><body>Please sign in to continue.</body></html>"
    target = tmp_path / "GPEN-BFR-1024.pth"
    target.write_bytes(page)
    (tmp_path / "GPEN-BFR-1024.pth.sha256").write_text(f"{hashlib.sha256(page).hexdigest()}  GPEN-BFR-1024.pth\n")
    server.serve("/GPEN-BFR-1024.pth", Route(body=S64_MODEL_FILE.read_bytes()))

    with pytest.raises(DownloadError) as info:
        download_model("GPEN-BFR-1024.pth", tmp_path, url_base=server.url_base)
    message = str(info.value)
    assert "web page" in message and f"delete {target}" in message and "\n" not in message
    assert target.read_bytes() == page and server.requests == []  # the user's file is theirs to delete


def test_an_existing_good_model_without_published_hash_is_already_present(server, tmp_path):
    (tmp_path / "GPEN-BFR-256.pth").write_bytes(GPEN_256)
    result = download_model("GPEN-BFR-256.pth", tmp_path, url_base=server.url_base)
    assert not result.downloaded and result.bytes == len(GPEN_256) and server.requests == []


def test_every_file_without_a_published_hash_has_a_resolution_to_check():
    from gpen_arch import RELEASED

    unhashed = [m for m in catalog.MODEL_FILES if m.sha256 is None]
    assert unhashed and all(Path(m.name).stem in RELEASED and m.name.endswith(".pth") for m in unhashed)


# --------------------------------------------------------------------------- deadline, stall, cancel
# The per-read timeout (`timeout`) never trips on a server that sends a byte now and then: the whole
# transfer has a deadline and a minimum throughput, and can be cancelled. Tiny limits keep these fast.


def test_a_trickling_server_is_given_up_as_stalled(server, tmp_path):
    server.serve("/GPEN-BFR-512.pth", Route(body=PAYLOAD, trickle=0.02))  # about 50 bytes/s
    model = entry(server)
    start = time.monotonic()
    with pytest.raises(DownloadError, match="stalled") as info:
        download_file(model, tmp_path, timeout=30, limits=Limits(stall_window=0.5, min_rate=1000))
    assert time.monotonic() - start < 5
    assert info.value.network and "below the minimum of 1000 bytes/s" in str(info.value)
    assert_refused(info.value, tmp_path, model.url)


def test_a_steady_transfer_that_would_take_hours_stops_at_the_deadline(server, tmp_path):
    server.serve("/GPEN-BFR-512.pth", Route(body=PAYLOAD, trickle=0.002))  # fast enough not to stall
    model = entry(server)
    start = time.monotonic()
    with pytest.raises(DownloadError, match="longer than the 1 s allowed") as info:
        download_file(model, tmp_path, timeout=30, limits=Limits(deadline=1, stall_window=0.6, min_rate=1))
    assert 1 <= time.monotonic() - start < 5 and info.value.network
    assert_refused(info.value, tmp_path, model.url)


def test_a_slow_but_steady_server_is_not_taken_for_a_stall(server, tmp_path):
    body = PAYLOAD[:300]
    server.serve("/GPEN-BFR-512.pth", Route(body=body, trickle=0.005))  # about 200 bytes/s, for 1.5 s
    model = entry(server, size=len(body), sha=hashlib.sha256(body).hexdigest())
    # Three windows long, each 100 byte gaps wide: a busy machine's pause in scheduling the server
    # must not pass for the stall this test says does not happen.
    result = download_file(model, tmp_path, limits=Limits(stall_window=0.5, min_rate=20))
    assert result.path.read_bytes() == body


def test_cancel_stops_a_blocked_transfer_at_once_and_leaves_nothing(server, tmp_path):
    server.serve("/GPEN-BFR-512.pth", Route(body=PAYLOAD, stall_after=50_000))
    cancel, receiving, outcome = threading.Event(), threading.Event(), {}

    def run() -> None:
        try:
            download_file(entry(server), tmp_path, timeout=60, chunk_size=8192, cancel=cancel,
                          progress=lambda done, total: receiving.set())
        except BaseException as exc:  # handed to the test's thread
            outcome["error"] = exc

    worker = threading.Thread(target=run)
    worker.start()
    assert receiving.wait(10)
    time.sleep(0.2)  # now blocked in the socket: the server sends nothing more for 10 s
    assert (tmp_path / "GPEN-BFR-512.pth.part").exists()
    start = time.monotonic()
    cancel.set()
    worker.join(5)
    assert not worker.is_alive() and time.monotonic() - start < 1
    assert isinstance(outcome.get("error"), DownloadCancelled)
    assert str(outcome["error"]) == f"Download of GPEN-BFR-512.pth cancelled; nothing was kept in {tmp_path}."
    assert leftovers(tmp_path) == []


def test_a_download_cancelled_before_it_starts_fetches_nothing_and_leaves_nothing(server, tmp_path):
    server.serve("/GPEN-BFR-512.pth", Route(body=PAYLOAD))
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(DownloadCancelled):
        download_file(entry(server), tmp_path, cancel=cancel)
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("limits", [dict(deadline=0), dict(deadline=float("nan")), dict(stall_window=-1),
                                    dict(min_rate=float("inf")), dict(deadline=True)])
def test_limits_must_be_positive_finite_numbers(limits):
    with pytest.raises(ValueError, match="positive, finite number"):
        Limits(**limits)


# --------------------------------------------------------------------------- catalogue


def test_catalogue_lists_every_released_file_once():
    expected = {
        "GPEN-BFR-256.pth", "GPEN-BFR-512.pth", "GPEN-BFR-1024.pth", "GPEN-BFR-2048.pth",
        "GPEN-Colorization-1024.pth", "GPEN-Inpainting-1024.pth",
        "GPEN-BFR-512.onnx", "GPEN-BFR-1024.onnx", "GPEN-BFR-2048.onnx",
    }
    names = catalog.model_names()
    assert len(names) == len(set(names)) and set(names) == expected
    assert catalog.DEFAULT_MODEL in names


def test_catalogue_records_are_well_formed():
    for model in catalog.MODEL_FILES:
        download.check_plain_name(model.name)
        assert model.url.startswith("https://")
        assert model.sha256 is None or re.fullmatch(r"[0-9a-f]{64}", model.sha256)
        assert model.size_bytes is None or model.size_bytes > 1_000_000
        assert model.kind in {"bfr", "colorization", "inpainting"}
        assert "non-commercial" in model.licence_note
        assert model.name.endswith((".pth", ".onnx"))
        if model.name.endswith(".onnx"):
            assert "/datasets/Gourieff/ReActor/" in model.url and model.url.endswith(model.name)
            assert model.sha256 is not None and model.size_bytes is not None


def test_find_model_file_names_the_valid_choices():
    assert catalog.find_model_file("GPEN-BFR-512.onnx").name == "GPEN-BFR-512.onnx"
    with pytest.raises(ValueError) as info:
        catalog.find_model_file("GPEN-BFR-4096.pth")
    for name in catalog.model_names():
        assert name in str(info.value)


def test_resolve_url_prefers_argument_then_environment_then_catalogue(monkeypatch):
    model = catalog.find_model_file("GPEN-BFR-1024.pth")
    assert download.resolve_url(model) == model.url
    monkeypatch.setenv(download.URL_BASE_ENV, "https://mirror.example/gpen/")
    assert download.resolve_url(model) == "https://mirror.example/gpen/GPEN-BFR-1024.pth"
    assert download.resolve_url(model, "http://127.0.0.1:9") == "http://127.0.0.1:9/GPEN-BFR-1024.pth"


def test_unwritable_destination_is_reported_as_a_disk_problem(server, tmp_path):
    server.serve("/GPEN-BFR-512.pth", Route(body=PAYLOAD))
    (tmp_path / "GPEN-BFR-512.pth.part").mkdir()  # the part file cannot be opened for writing
    with pytest.raises(DownloadError, match="cannot write") as info:
        download_file(entry(server), tmp_path)
    assert not info.value.network and not (tmp_path / "GPEN-BFR-512.pth").exists()
