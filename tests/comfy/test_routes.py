"""The editor routes of nodes/routes.py over plain HTTP on the session's real ComfyUI server:
model info read from the tensors (compared with facts recorded from the official GPEN code),
the loader's sentence for a file that is not a usable GPEN, refusals as JSON 4xx.
(Downloads, which need a local mirror, are tested in test_frontend.py.)"""
from __future__ import annotations

import json
import os
import urllib.error
import urllib.parse
import urllib.request

import pytest

import comfy_harness as harness
import gpen_arch
from fixture_files import FIXTURES, S64_MODEL_FILE, S64_NOCONCAT_MODEL_FILE
from helpers import malformed_models as malformed

MODEL = "GPEN-tiny-64.pth"  # the fixture gpen_s64_cm1_n0125.pth, installed by the `server` fixture
OFFICIAL = json.loads((FIXTURES / "gpen_s64_cm1_n0125.json").read_text(encoding="utf-8"))
OTHER = json.loads((FIXTURES / "gpen_s64_cm2_n0125_noconcat.json").read_text(encoding="utf-8"))


def get(server, route: str) -> tuple[int, str, dict]:
    """(status, content type, JSON body) of a GET, 4xx included."""
    try:
        with urllib.request.urlopen(server.url + route, timeout=30) as response:
            return response.status, response.headers.get_content_type(), json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, err.headers.get_content_type(), json.loads(err.read())


def info_route(name: str, prefix: str = "") -> str:
    return f"{prefix}/gpen/model_info?name={urllib.parse.quote(name, safe='')}"


@pytest.mark.parametrize("prefix", ["", "/api"])
def test_model_info_reads_size_parameters_and_dtype_from_the_file(server, prefix):
    status, kind, info = get(server, info_route(MODEL, prefix))
    assert (status, kind) == (200, "application/json")
    assert info["ok"] is True and info["name"] == MODEL and info["file"] == MODEL
    assert info["size"] == OFFICIAL["config"]["size"] and info["config"] == OFFICIAL["config"]
    assert info["parameters"] == OFFICIAL["n_params"]  # counted by the official code
    assert info["dtype"] == "fp32" and info["format"] == "pytorch" and info["task"] == "restore"
    assert info["file_bytes"] == os.path.getsize(S64_MODEL_FILE)
    assert "non-commercial" in info["licence"] and info["sha256"] is None


def test_model_info_of_a_broken_file_is_the_loaders_sentence(server):
    status, _, info = get(server, info_route("GPEN-broken.pth"))
    assert status == 200 and info["ok"] is False
    assert "GPEN-broken.pth" in info["error"] and "size" not in info


@pytest.mark.parametrize("name, build", [
    ("GPEN-empty-tensor.pth", lambda folder: malformed.saved(malformed.with_empty_tensor())),
    ("GPEN-integer-keys.pth", lambda folder: malformed.saved(malformed.with_integer_keys())),
    ("GPEN-nan-weights.onnx", malformed.nan_onnx),
])
def test_model_info_of_a_malformed_gpen_is_the_loaders_sentence(server, tmp_path, name, build):
    """These said "could not be read (float division by zero)" or described a NaN model as good."""
    path = server.base / "models" / "facerestore" / name
    path.write_bytes(build(tmp_path))
    try:
        status, _, info = get(server, info_route(name))
        with pytest.raises(gpen_arch.ModelLoadError) as loading:
            gpen_arch.load_model(path)
    finally:
        path.unlink()
    assert status == 200 and info["ok"] is False and info["error"] == str(loading.value)


SECRET = "root:$6$not-for-the-browser$0123456789abcdefghijklmnopqrstuvwxyz:19000:0:99999:7:::\n"


@pytest.mark.parametrize("content, sentence", [
    (SECRET * 3, "Model file GPEN-shadow.pth is a text file, not a model; download the model file again."),
    ("root:s3cret\n", "Model file GPEN-shadow.pth could not be read ("),  # too short to be told from a pickle
])
def test_model_info_and_the_loader_never_show_a_file_that_is_not_a_model(server, tmp_path, content, sentence):
    """A link in a model folder can point anywhere the server can read (/etc/shadow): its start is
    shown on the command line, which only its own user reaches, and never through the server."""
    secret = tmp_path / "shadow"
    secret.write_text(content, encoding="ascii")
    link = server.base / "models" / "facerestore" / "GPEN-shadow.pth"
    link.symlink_to(secret)
    harness.save_png(harness.face_photo(64), server.base / "input" / "routes-face.png")
    graph = {"1": {"class_type": "LoadImage", "inputs": {"image": "routes-face.png"}},
             "2": harness.gpen_one_node(link.name, device="cpu", precision="fp32"),
             "3": {"class_type": "PreviewImage", "inputs": {"images": ["2", 0]}}}
    try:
        status, _, info = get(server, info_route(link.name))
        entry = server.run(graph)
    finally:
        link.unlink()
    assert status == 200 and info["ok"] is False and info["error"].startswith(sentence)
    assert harness.history_error(entry)["exception_message"].strip() == info["error"]
    for shown in (json.dumps(info), json.dumps(entry)):
        assert not [mark for mark in ("root:", "$6$", "s3cret", "not-for-the-browser", "load key") if mark in shown]


def test_model_info_follows_a_replaced_file(server):
    folder = server.base / "models" / "facerestore"
    target = harness.put_model(folder, "GPEN-swapped.pth", S64_MODEL_FILE)
    try:
        first = get(server, info_route(target.name))[2]
        harness.put_model(folder, target.name, S64_NOCONCAT_MODEL_FILE)
        os.utime(target, ns=(target.stat().st_atime_ns, target.stat().st_mtime_ns + 10**9))
        second = get(server, info_route(target.name))[2]
    finally:
        target.unlink()
    assert first["parameters"] == OFFICIAL["n_params"]
    assert second["parameters"] == OTHER["n_params"] and second["config"] == OTHER["config"]
    assert get(server, info_route(target.name))[0] == 404  # gone from the folder, gone from the route


@pytest.mark.parametrize("name", [
    "../GPEN-tiny-64.pth", "../../user/default/comfy.settings.json", "facerestore/../../models/x.pth",
    "/etc/passwd", "..\\GPEN-tiny-64.pth", "C:\\models\\GPEN.pth", "", "x" * 600,
])
def test_model_info_refuses_paths(server, name):
    status, kind, answer = get(server, info_route(name))
    assert (status, kind) == (400, "application/json")
    assert answer["ok"] is False and answer["error"]


@pytest.mark.parametrize("name", ["GPEN-BFR-512.pth", "GPEN-tiny-64.PTH", "README.txt"])
def test_model_info_refuses_files_that_are_not_listed(server, name):
    status, kind, answer = get(server, info_route(name))
    assert (status, kind) == (404, "application/json")
    assert name in answer["error"] and "refresh" in answer["error"]


def test_model_info_without_a_name_is_refused(server):
    status, _, answer = get(server, "/gpen/model_info")
    assert status == 400 and "?name=" in answer["error"]


def test_models_route_lists_the_files_the_loader_offers_and_the_catalogue(server):
    status, _, answer = get(server, "/gpen/models")
    assert status == 200
    assert answer["files"] == server.get("/object_info/GPENLoadModel")["GPENLoadModel"]["input"]["required"][
        "model_name"][0]
    names = [entry["name"] for entry in answer["catalog"]]
    assert answer["default"] == "GPEN-BFR-512.pth" and answer["default"] in names
    assert {"GPEN-BFR-256.pth", "GPEN-BFR-1024.pth", "GPEN-BFR-2048.pth"} <= set(names)
    known = {entry["name"]: entry for entry in answer["catalog"]}
    assert known["GPEN-BFR-512.pth"]["hash_known"] is True and known["GPEN-BFR-512.pth"]["size_bytes"] > 10**8


@pytest.mark.parametrize("payload", [{"name": "../GPEN-BFR-512.pth"}, {"name": "GPEN-tiny-64.pth"}, {}])
def test_download_refuses_names_outside_the_catalogue(server, payload):
    status, answer = server.post("/gpen/download", payload)
    assert status == 400 and answer["ok"] is False and answer["error"]
    assert not list((server.base / "models" / "facerestore").glob("*.part"))
