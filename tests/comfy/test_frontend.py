"""The editor extension (js/) in headless Chromium, driven by Playwright, against the real ComfyUI
frontend served by a real ComfyUI server, in both node renderers: the classic canvas and the new one
("Nodes 2.0", Vue nodes). Each ComfyUI (harness.INSTALL_LABELS: 0.3.75 with its frontend 1.32.9,
0.33.0 with 1.49.6, and 0.33.0 with the newest frontend, 1.58.1) gets one server; each renderer one
page. The new renderer is tested from frontend 1.49.6 on: 1.32.9 has an early version of it. On the
newest frontend only the tests marked `every_frontend` run, to keep CI short. The plain HTTP checks of
the download routes run once, on 0.3.75.

The server starts with empty model folders and GPEN_MODEL_URL_BASE pointing at a local HTTP
server (tests/helpers/http_model_server.py) that serves a small GPEN made here, so the download
button is exercised end to end without the internet. The plain-HTTP download checks (one download
per name, a cut transfer) use the same server. Install the browser with scripts/setup_browser.sh.
"""
from __future__ import annotations

import hashlib
import importlib.util
import io
import json
import os
import shutil
import sys
import time
import urllib.parse
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch

import comfy_harness as harness

sys.path.insert(0, str(harness.REPO / "tests" / "helpers"))
from http_model_server import ModelServer, Route  # noqa: E402

from fixture_files import small_config, small_gpen  # noqa: E402
from gpen_arch import GPENConfig  # noqa: E402
from editor_page import (  # noqa: E402
    CHOOSE_MODEL, CHROMIUM, CHROMIUM_FLAGS, NEW_NODE, PACK_JS, RECORD_DEPRECATIONS, TIMEOUT_MS, WIDGET_VALUE,
    BrowserLog, close_dialogs, no_errors_from_us, refresh_lists, screenshot, wait_download_finished,
    wait_fully_visible,
)

LOADED_MESSAGE = "[GPEN] editor extension loaded"
SMALL_CONFIG = GPENConfig(size=64, style_dim=128, channel_multiplier=1, narrow=0.125)
RENDERERS = ("classic", "vue")

every_frontend = pytest.mark.every_frontend


def pytest_generate_tests(metafunc):
    if "page" in metafunc.fixturenames:
        lean = metafunc.definition.get_closest_marker("every_frontend") is not None
        installs = harness.INSTALL_LABELS if lean else harness.INSTALL_LABELS[:2]
        metafunc.parametrize("install_label", installs, scope="module")
        metafunc.parametrize("renderer", RENDERERS, scope="module")
    elif "ui_server" in metafunc.fixturenames:
        metafunc.parametrize("install_label", harness.INSTALL_LABELS[:1], scope="module")


# --------------------------------------------------------------------------- fixtures


@contextmanager
def environment(**values: str):
    old = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in old.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def six_face_photo() -> Path:
    spec = importlib.util.find_spec("insightface")
    if spec is None:
        pytest.fail("insightface is not installed; its wheel ships the 6-face photo t1.jpg used here")
    return Path(list(spec.submodule_search_locations)[0]) / "data" / "images" / "t1.jpg"


@pytest.fixture(scope="module")
def mirror():
    with ModelServer() as server:
        yield server


@pytest.fixture(scope="module")
def ui_server(install_label, tmp_path_factory, mirror):
    install = harness.comfy_install(install_label)
    if install.missing:
        pytest.skip(install.missing)
    base = harness.make_base(tmp_path_factory.mktemp("comfy_ui"))
    settings = base / "user" / "default" / "comfy.settings.json"
    settings.parent.mkdir(parents=True, exist_ok=True)
    # A returning user: no first-run template browser covering the canvas.
    settings.write_text(json.dumps({"Comfy.TutorialCompleted": True}), encoding="utf-8")
    shutil.copyfile(six_face_photo(), base / "input" / "t1.jpg")
    server = harness.ComfyServer.of(install, base)
    with environment(GPEN_MODEL_URL_BASE=mirror.url_base):
        server.start()
    try:
        yield server.wait_ready()
    finally:
        server.stop()


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).is_file():
        pytest.fail(f"Chromium is not installed at {CHROMIUM}; run scripts/setup_browser.sh")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("the Python package 'playwright' is missing; run scripts/setup_browser.sh")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(scope="module")
def page(browser, ui_server, install_label, renderer):
    if renderer == "vue" and install_label == harness.INSTALL_LABELS[0]:
        pytest.skip("the new renderer is tested from frontend 1.49.6 on: the one in 1.32.9 (ComfyUI 0.3.75) "
                    "is an early version that does not follow node.setSize or the positions of loaded nodes")
    tab = browser.new_page(viewport={"width": 1400, "height": 900})
    log = BrowserLog()
    tab.on("console", lambda m: log.console.append((m.type, m.text, m.location.get("url", ""))))
    tab.on("pageerror", lambda e: log.console.append(("pageerror", f"{e}\n{getattr(e, 'stack', '')}", "")))
    tab.on("request", lambda r: log.requests.append(r.url))
    tab.add_init_script(RECORD_DEPRECATIONS)
    tab.set_default_timeout(TIMEOUT_MS)
    tab.goto(ui_server.url)
    tab.wait_for_function("() => window.app?.canvas?.graph && document.getElementById('gpen-style')")
    tab.evaluate("(vue) => app.extensionManager.setting.set('Comfy.VueNodes.Enabled', vue)", renderer == "vue")
    tab.gpen_log = log
    tab.gpen_combo = f"{install_label}-{renderer}"
    yield tab
    tab.close()


def model_folder(server) -> Path:
    return server.base / "models" / "facerestore"


def empty_model_folder(server) -> None:
    for path in model_folder(server).iterdir():
        path.unlink()


# --------------------------------------------------------------------------- browser tests


@every_frontend
def test_extension_loads_and_talks_only_to_its_server(page, ui_server):
    log = page.gpen_log
    assert any(kind == "log" and text == LOADED_MESSAGE and url.endswith(PACK_JS + "gpen.js")
               for kind, text, url in log.console), log.console
    served = [name for name in ui_server.get("/extensions") if name.startswith(PACK_JS)]
    assert {PACK_JS + "gpen.js", PACK_JS + "gpen_model_panel.js", PACK_JS + "gpen_face_picker.js"} <= set(served)
    for name in served:  # every call goes through ComfyUI's api.fetchApi, never to another host
        with urllib.request.urlopen(ui_server.url + name, timeout=10) as response:
            # the SVG namespace is a name, never fetched
            source = response.read().decode("utf-8").replace('"http://www.w3.org/2000/svg"', "")
        for forbidden in ("http://", "https://", "fetch(", "XMLHttpRequest", "WebSocket(", "import("):
            assert forbidden not in source, f"{name} contains {forbidden!r}"
    ours = [url for url in log.requests if "gpen" in url.lower()]
    assert ours and all(url.startswith(ui_server.url + "/") for url in ours), ours
    # A refused request answers JSON in the browser too (plain HTTP: test_routes.py).
    answer = page.evaluate("""async () => {
      const name = encodeURIComponent('../../user/default/comfy.settings.json');
      const r = await fetch('/api/gpen/model_info?name=' + name);
      return [r.status, await r.json()];
    }""")
    assert answer[0] == 400 and "not a file name" in answer[1]["error"]
    log.console[:] = [entry for entry in log.console if "model_info?name=..%2F" not in entry[2]]
    no_errors_from_us(page)


def test_a_cut_download_leaves_no_model_and_says_why(page, ui_server, mirror):
    body, _ = small_gpen(seed=1, config=SMALL_CONFIG)
    mirror.serve("/GPEN-BFR-256.pth", Route(body=body, send_bytes=len(body) // 2))
    close_dialogs(page)
    empty_model_folder(ui_server)
    refresh_lists(page)
    node = page.evaluate(NEW_NODE, "GPENLoadModel")
    box = page.locator(".gpen-download")
    box.wait_for(state="visible")
    page.select_option(".gpen-download-choice", "GPEN-BFR-256.pth")
    page.click(".gpen-download-button")
    assert "gpen-error" in wait_download_finished(page)
    message = page.locator(".gpen-download-status").inner_text()
    assert "GPEN-BFR-256.pth" in message and f"stopped after {len(body) // 2} of {len(body)} bytes" in message
    assert list(model_folder(ui_server).iterdir()) == []  # no model, no .part, no .sha256
    assert page.evaluate(WIDGET_VALUE, [node, "model_name"]) in (None, "")
    assert box.is_visible() and page.locator(".gpen-download-button").is_enabled()  # the user can try again
    no_errors_from_us(page)


@every_frontend
def test_download_button_installs_the_first_model_with_progress(page, ui_server, mirror):
    body, parameters = small_gpen(seed=2, config=small_config(256))  # GPEN-BFR-256.pth must be a GPEN-256
    mirror.serve("/GPEN-BFR-256.pth", Route(body=body))
    close_dialogs(page)
    empty_model_folder(ui_server)
    refresh_lists(page)
    node = page.evaluate(NEW_NODE, "GPENLoadModel")
    page.locator(".gpen-download").wait_for(state="visible")
    assert page.locator(".gpen-download-choice").input_value() == "GPEN-BFR-512.pth"  # the default offer
    page.evaluate("""() => {
      window.__gpenProgress = [];
      const bar = document.querySelector('.gpen-download progress');
      new MutationObserver(() => window.__gpenProgress.push(bar.value))
        .observe(bar, { attributes: true, attributeFilter: ['value'] });
    }""")
    page.select_option(".gpen-download-choice", "GPEN-BFR-256.pth")
    page.click(".gpen-download-button")
    assert "gpen-ok" in wait_download_finished(page)

    target = model_folder(ui_server) / "GPEN-BFR-256.pth"
    assert target.read_bytes() == body
    digest = hashlib.sha256(body).hexdigest()
    assert sorted(p.name for p in model_folder(ui_server).iterdir()) == ["GPEN-BFR-256.pth", "GPEN-BFR-256.pth.sha256"]
    assert (model_folder(ui_server) / "GPEN-BFR-256.pth.sha256").read_text().split()[0] == digest
    status = page.locator(".gpen-download-status").inner_text()
    assert f"sha256 {digest} (no published hash: read as the GPEN its name says; recorded in " \
           "GPEN-BFR-256.pth.sha256)" in status
    final = ui_server.get("/gpen/download_status?name=GPEN-BFR-256.pth")
    assert final == {"name": "GPEN-BFR-256.pth", "state": "done", "bytes": len(body), "sha256": digest,
                     "hash_checked": False, "sha256_file": "GPEN-BFR-256.pth.sha256", "already_present": False,
                     "running": False}

    seen = page.evaluate("() => window.__gpenProgress")
    moving = [v for v in seen if 0 < v < 100]
    assert len(set(moving)) >= 3 and seen == sorted(seen) and seen[-1] == 100, seen

    # The model list was refreshed and the new file chosen; its info is shown.
    page.wait_for_function("""(id) => app.rootGraph.getNodeById(id).widgets[0].value === 'GPEN-BFR-256.pth'""", arg=node)
    info = page.locator(".gpen-info")
    page.locator(".gpen-info[data-file='GPEN-BFR-256.pth']").wait_for()
    assert info.inner_text().startswith("GPEN-256 · face restoration · 256×256 px faces")
    assert f"{parameters // 1000}." in info.inner_text() and " k parameters" in info.inner_text()
    assert info.get_attribute("title") == f"{parameters:,} parameters"
    assert digest in page.locator(".gpen-hash").inner_text()
    assert "non-commercial" in page.locator(".gpen-licence").inner_text()
    page.locator(".gpen-download").wait_for(state="hidden")
    wait_fully_visible(page, ".gpen-licence")  # not cut off by the panel's edge, not covered
    wait_fully_visible(page, ".gpen-hash")
    screenshot(page, node, "model-panel")
    no_errors_from_us(page)


def test_cancel_button_stops_the_download_and_leaves_nothing(page, ui_server, mirror):
    body, _ = small_gpen(seed=6, config=small_config(1024))
    mirror.release.clear()  # the transfer stalls 100000 bytes in, until the test releases it
    mirror.serve("/GPEN-BFR-1024.pth", Route(body=body, stall_after=100_000))
    close_dialogs(page)
    empty_model_folder(ui_server)
    refresh_lists(page)
    page.evaluate(NEW_NODE, "GPENLoadModel")
    page.locator(".gpen-download").wait_for(state="visible")
    cancel = page.locator(".gpen-download-cancel")
    assert cancel.is_hidden()  # only while a download runs
    page.select_option(".gpen-download-choice", "GPEN-BFR-1024.pth")
    page.click(".gpen-download-button")
    page.wait_for_function("() => document.querySelector('.gpen-download progress').value > 0")
    assert (model_folder(ui_server) / "GPEN-BFR-1024.pth.part").is_file()
    try:
        cancel.click()
        page.locator(".gpen-download-status.gpen-cancelled").wait_for(timeout=10_000)
    finally:
        mirror.release.set()
    message = page.locator(".gpen-download-status").inner_text()
    assert message.startswith("Download of GPEN-BFR-1024.pth cancelled; nothing was kept in ")
    assert list(model_folder(ui_server).iterdir()) == []  # no model, no .part, no .sha256
    assert cancel.is_hidden() and page.locator(".gpen-download-button").is_enabled()
    assert page.evaluate("() => document.querySelector('.gpen-download progress').value") == 0
    state = ui_server.get("/gpen/download_status?name=GPEN-BFR-1024.pth")
    assert state["state"] == "cancelled" and state["running"] is False
    no_errors_from_us(page)


@every_frontend
def test_choosing_a_model_shows_what_it_is(page, ui_server):
    folder = model_folder(ui_server)
    other = GPENConfig(size=64, style_dim=128, channel_multiplier=2, narrow=0.125, isconcat=False)
    body, parameters = small_gpen(seed=3, config=other)
    (folder / "GPEN-small-b.pth").write_bytes(body)
    detector = io.BytesIO()
    torch.save({"ClassHead.0.conv1x1.weight": torch.zeros(4, 64, 1, 1),
                "BboxHead.0.conv1x1.weight": torch.zeros(8, 64, 1, 1)}, detector)
    (folder / "GPEN-is-really-a-detector.pth").write_bytes(detector.getvalue())
    refresh_lists(page)

    node = page.evaluate(NEW_NODE, "GPENFaceRestore")
    values = page.evaluate(CHOOSE_MODEL, [node, "GPEN-small-b.pth"])
    assert "GPEN-small-b.pth" in values
    info = page.locator(".gpen-info[data-file='GPEN-small-b.pth']")
    info.wait_for()
    assert info.inner_text().startswith("GPEN-64")
    assert info.get_attribute("title") == f"{parameters:,} parameters"
    assert f"{parameters // 1000}." in info.inner_text() and " k parameters" in info.inner_text() and "fp32" in info.inner_text()
    assert page.locator(".gpen-download").is_hidden()
    # The panel is neither saved in the workflow nor sent with the prompt: saved workflows keep their
    # widget positions.
    saved, sent = page.evaluate("""async (id) => {
      const node = app.rootGraph.serialize().nodes.find((n) => String(n.id) === String(id));
      const prompt = await app.graphToPrompt();
      return [node.widgets_values, prompt.output[String(id)].inputs];
    }""", node)
    spec = ui_server.get("/object_info/GPENFaceRestore")["GPENFaceRestore"]["input"]
    widgets = [name for name, _ in harness.widget_inputs(spec)]
    assert len(saved) == len(widgets) and saved[widgets.index("model_name")] == "GPEN-small-b.pth"
    assert set(sent) == set(widgets)

    page.evaluate(CHOOSE_MODEL, [node, "GPEN-is-really-a-detector.pth"])
    info = page.locator(".gpen-info.gpen-error[data-file='GPEN-is-really-a-detector.pth']")
    info.wait_for()
    assert info.inner_text() == ("Model file GPEN-is-really-a-detector.pth is a RetinaFace face detector, "
                                 "not a GPEN model.")
    no_errors_from_us(page)


def test_a_failed_run_is_explained_on_the_node(page, ui_server):
    folder = model_folder(ui_server)
    if not (folder / "GPEN-small-c.pth").exists():
        (folder / "GPEN-small-c.pth").write_bytes(small_gpen(seed=5, config=SMALL_CONFIG)[0])
        refresh_lists(page)
    # 'parse' needs the face parser's weights, which this ComfyUI does not have.
    graph = {"1": {"class_type": "LoadImage", "inputs": {"image": "t1.jpg"}},
             "2": {"class_type": "GPENFaceRestore",
                   "inputs": {"image": ["1", 0], "model_name": "GPEN-small-c.pth", "strength": 1.0,
                              "detector": "retinaface_mobile0.25_bundled", "threshold": 0.5, "max_faces": 1,
                              "mask_mode": "parse", "color_match": False, "device": "auto", "precision": "auto"}},
             "3": {"class_type": "PreviewImage", "inputs": {"images": ["2", 0]}}}
    page.evaluate("""async (graph) => {
      app.rootGraph.clear();
      await app.loadApiJson(graph, "gpen-error.json");
      app.canvas.ds.scale = 1;
      app.canvas.ds.offset = [0, 0];
      await app.queuePrompt(0, 1);
    }""", graph)
    error = page.locator(".gpen-model-panel .gpen-node-error")
    error.wait_for(state="visible", timeout=60_000)
    assert "parsing_parsenet.pth" in error.inner_text()
    close_dialogs(page)  # ComfyUI's own report of the same error
    no_errors_from_us(page)


@every_frontend
def test_clicking_a_numbered_face_toggles_its_index(page, ui_server):
    graph = {"1": {"class_type": "LoadImage", "inputs": {"image": "t1.jpg"}},
             "2": {"class_type": "GPENDetectFaces",
                   "inputs": {"image": ["1", 0], "detector": "retinaface_mobile0.25_bundled", "threshold": 0.5,
                              "order": "left-right", "indices": "", "min_size": 0, "max_faces": 0}}}
    close_dialogs(page)
    node = page.evaluate("""async (graph) => {
      app.rootGraph.clear();
      await app.loadApiJson(graph, "gpen-faces.json");
      const load = app.rootGraph.nodes.find((n) => n.comfyClass === "LoadImage");
      const node = app.rootGraph.nodes.find((n) => n.comfyClass === "GPENDetectFaces");
      load.pos = [20, 120];
      node.pos = [420, 120];
      node.setSize([420, 520]);
      app.canvas.ds.scale = 1;
      app.canvas.ds.offset = [0, 0];
      app.rootGraph.setDirtyCanvas(true, true);
      await app.queuePrompt(0, 1);
      return node.id;
    }""", graph)
    faces = page.locator(".gpen-face")
    page.wait_for_function("() => document.querySelectorAll('.gpen-face').length >= 6", timeout=60_000)
    assert faces.count() == 6
    # the unmarked preview PNG the node saved in ComfyUI's temp folder is what the picker shows, once
    page.locator(".gpen-stage[data-loaded='true']").wait_for()
    href = page.locator(".gpen-stage image").get_attribute("href")
    query = urllib.parse.parse_qs(urllib.parse.urlparse(href).query)
    assert query["type"] == ["temp"] and query["filename"][0].startswith("gpen_faces_")
    preview = ui_server.base / "temp" / query.get("subfolder", [""])[0] / query["filename"][0]
    assert harness.read_png(preview).shape[1] == 1024
    # the picture as shown: the picker's whole width, at the picture's aspect ratio
    stage, picker = page.locator(".gpen-stage image").bounding_box(), page.locator(".gpen-picker").bounding_box()
    assert stage["width"] >= 200 and stage["width"] >= picker["width"] - 2, (stage, picker)
    assert abs(stage["height"] / stage["width"] - 886 / 1280) < 0.02, stage
    wait_fully_visible(page, ".gpen-picker-hint")  # no face number drawn over it
    assert page.locator(".gpen-picker img").count() == 0  # no stock preview beside the picker
    assert page.locator(f'[data-node-id="{node}"] img').count() == 0
    numbers = [faces.nth(i).get_attribute("data-index") for i in range(6)]
    assert sorted(numbers) == [str(i) for i in range(6)]
    # order "left-right": a face further right has a larger number
    lefts = [faces.nth(i).bounding_box()["x"] for i in range(6)]
    assert [n for _, n in sorted(zip(lefts, numbers))] == [str(i) for i in range(6)]
    assert page.locator(".gpen-face.gpen-kept").count() == 6  # empty indices: every face is kept

    page.click(".gpen-face[data-index='2']")
    assert page.evaluate(WIDGET_VALUE, [node, "indices"]) == "2"
    page.click(".gpen-face[data-index='4']")
    assert page.evaluate(WIDGET_VALUE, [node, "indices"]) == "2,4"
    page.click(".gpen-face[data-index='2']")
    assert page.evaluate(WIDGET_VALUE, [node, "indices"]) == "4"
    assert [faces.nth(i).get_attribute("data-index") for i in range(6)
            if "gpen-kept" in faces.nth(i).get_attribute("class")] == ["4"]
    # every face box lies on the picture, and its number is drawn once (by the picker, not the PNG)
    for i in range(6):
        box, pic = faces.nth(i).bounding_box(), stage
        assert pic["x"] <= box["x"] and box["x"] + box["width"] <= pic["x"] + pic["width"] + 1
    screenshot(page, node, "face-picker")

    # The next run uses the picked face only.
    page.evaluate("() => app.queuePrompt(0, 1)")
    deadline = time.monotonic() + 60
    texts = []
    while time.monotonic() < deadline:
        history = ui_server.get("/history")
        texts = [entry["outputs"].get(str(node), {}).get("text", [""])[0] for entry in history.values()
                 if entry.get("prompt", [None, None, {}])[2].get(str(node), {}).get("inputs", {}).get("indices") == "4"]
        if texts:
            break
        time.sleep(0.2)
    assert texts and texts[0].startswith("1 face(s)"), texts
    no_errors_from_us(page)


def test_the_picker_applies_ranges_to_the_faces_shown_without_expanding_them(page):
    """The picker reads `indices` as the node does: '0-99999999999999' keeps every face (it used to
    throw past 10000 and show none kept while the node restored them all), and a click writes out
    the faces shown, keeping what the text chose past them."""
    result = page.evaluate("""async (url) => {
      const picker = await import(url);
      const started = performance.now();
      const spans = picker.parseIndices("0-99999999999999");
      const out = {
        kept: [0, 5, 99].map((i) => picker.isChosen(spans, i)),
        click: picker.toggleIndex("0-99999999999999", 2, 6),
        past: picker.toggleIndex("7", 1, 6),
        last: picker.toggleIndex("2", 2, 6),
      };
      out.ms = performance.now() - started;
      return out;
    }""", f"{PACK_JS}gpen_face_picker.js")
    assert result["kept"] == [True, True, True]
    assert result["click"] == "0,1,3,4,5,6-99999999999999"
    assert result["past"] == "1,7" and result["last"] == ""  # no face chosen: every face again
    assert result["ms"] < 100
    no_errors_from_us(page)


# --------------------------------------------------------------------------- plain HTTP downloads


def test_one_download_per_name_and_a_stalled_then_cut_transfer_leaves_nothing(ui_server, mirror):
    body, _ = small_gpen(seed=4, config=SMALL_CONFIG)
    mirror.release.clear()  # another test may have released its stall
    mirror.serve("/GPEN-BFR-1024.pth", Route(body=body, stall_after=100_000))
    status, answer = ui_server.post("/gpen/download", {"name": "GPEN-BFR-1024.pth"})
    assert status == 202 and answer["state"] == "started"
    status, answer = ui_server.post("/gpen/download", {"name": "GPEN-BFR-1024.pth"})
    assert status == 409 and "already downloading" in answer["error"]
    deadline = time.monotonic() + 10
    while ui_server.get("/gpen/download_status?name=GPEN-BFR-1024.pth")["state"] != "progress":
        assert time.monotonic() < deadline, "no progress reported while the transfer runs"
        time.sleep(0.05)
    assert (model_folder(ui_server) / "GPEN-BFR-1024.pth.part").is_file()  # being written, not yet a model
    assert not (model_folder(ui_server) / "GPEN-BFR-1024.pth").exists()
    mirror.release.set()  # the server now closes the connection, 100000 bytes into the file
    deadline = time.monotonic() + 20
    while (state := ui_server.get("/gpen/download_status?name=GPEN-BFR-1024.pth"))["running"]:
        assert time.monotonic() < deadline, "the cut transfer was not noticed"
        time.sleep(0.05)
    assert state["state"] == "error" and f"stopped after 100000 of {len(body)} bytes" in state["message"]
    assert not [p for p in model_folder(ui_server).iterdir() if p.name.startswith("GPEN-BFR-1024")]


def test_cancel_route_stops_a_download_removes_its_part_and_lets_a_new_one_start(ui_server, mirror):
    body, _ = small_gpen(seed=7, config=small_config(1024))
    name, folder = "GPEN-BFR-1024.pth", model_folder(ui_server)
    status, answer = ui_server.post("/gpen/download_cancel", {"name": name})
    assert status == 409 and "nothing to cancel" in answer["error"]

    mirror.release.clear()  # the transfer stalls 100000 bytes in: only a cancel ends it early
    mirror.serve("/" + name, Route(body=body, stall_after=100_000))
    try:
        assert ui_server.post("/gpen/download", {"name": name})[0] == 202
        deadline = time.monotonic() + 10
        while ui_server.get(f"/gpen/download_status?name={name}")["state"] != "progress":
            assert time.monotonic() < deadline, "no progress reported while the transfer runs"
            time.sleep(0.05)
        assert (folder / (name + ".part")).is_file()
        start = time.monotonic()
        status, answer = ui_server.post("/api/gpen/download_cancel", {"name": name})
        took = time.monotonic() - start
    finally:
        mirror.release.set()
    assert status == 200 and answer["state"] == "cancelled" and took < 5, (status, answer, took)
    assert answer["message"] == f"Download of {name} cancelled; nothing was kept in {folder}."
    assert not [p for p in folder.iterdir() if p.name.startswith(name)]
    assert ui_server.get(f"/gpen/download_status?name={name}")["running"] is False

    mirror.serve("/" + name, Route(body=body))
    assert ui_server.post("/gpen/download", {"name": name})[0] == 202  # not 409: the cancelled one is gone
    deadline = time.monotonic() + 30
    while (state := ui_server.get(f"/gpen/download_status?name={name}"))["running"]:
        assert time.monotonic() < deadline, "the second download did not finish"
        time.sleep(0.05)
    assert state["state"] == "done" and (folder / name).read_bytes() == body
    for path in folder.iterdir():
        path.unlink()


def test_download_refusals_are_json_4xx(ui_server, mirror):
    before = list(mirror.requests)
    for payload in ({"name": "../GPEN-BFR-512.pth"}, {"name": "/etc/passwd"}, {"name": "GPEN-BFR-512.pth/.."},
                    {"name": "not-in-the-list.pth"}, {"name": 5}, {}, ["GPEN-BFR-512.pth"]):
        for route in ("/gpen/download", "/gpen/download_cancel"):
            status, answer = ui_server.post(route, payload)
            assert status == 400 and answer["ok"] is False and answer["error"], (route, payload)
    assert mirror.requests == before  # nothing was fetched for a refused name
