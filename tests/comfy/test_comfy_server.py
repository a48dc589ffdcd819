"""The pack in a real ComfyUI server (`main.py --cpu`, one per session): /object_info,
prompts through POST /prompt and /history, errors as the user sees them."""
from __future__ import annotations

import subprocess
import sys
import urllib.parse

import numpy as np
import pytest

import comfy_harness as harness

MODEL = "GPEN-tiny-64.pth"


@pytest.fixture(scope="module")
def inputs(server):
    folder = server.base / "input"
    harness.save_png(harness.face_photo(256), folder / "astronaut.png")
    harness.save_png(harness.faceless_image(96, 128), folder / "ramps.png")
    return folder


def one_node(model_name: str, image_node: str = "1") -> dict:
    return harness.gpen_one_node(model_name, image_node)


def load_image(name: str) -> dict:
    return {"class_type": "LoadImage", "inputs": {"image": name}}


def save_image(source: str, prefix: str) -> dict:
    return {"class_type": "SaveImage", "inputs": {"images": [source, 0], "filename_prefix": prefix}}


def four_nodes() -> dict:
    return {**harness.gpen_chain(MODEL), "8": save_image("7", "gpen/chain"),
            "9": {"class_type": "PreviewImage", "inputs": {"images": ["6", 1]}}}


def saved(server, entry: dict, node_id: str) -> np.ndarray:
    refs = harness.saved_images(entry, node_id)
    assert len(refs) == 1, f"node {node_id} saved {refs}"
    return harness.read_png(server.output_file(refs[0]))


def test_object_info_lists_our_nodes(server):
    log = server.log_tail(200_000)
    assert f"custom_nodes/{harness.PACK_NAME}" in log  # ComfyUI reports the load time of our pack
    assert not [line for line in log.splitlines() if "IMPORT FAILED" in line and harness.PACK_NAME in line]
    info = server.get("/object_info")
    for node_id in harness.NODE_IDS:
        node = info[node_id]
        assert node["category"] == "GPEN" and node["python_module"] == f"custom_nodes.{harness.PACK_NAME}"
        assert node["description"] and node["display_name"].startswith(("GPEN", "Load GPEN"))
        for name, spec in {**node["input"]["required"], **node["input"].get("optional", {})}.items():
            assert spec[1].get("tooltip"), f"{node_id}.{name}"
    assert info["GPENLoadModel"]["input"]["required"]["model_name"][0] == ["GPEN-broken.pth", MODEL]
    assert info["GPENLoadModel"]["output"] == ["GPEN_MODEL"]


def test_corrupt_model_is_an_execution_error_and_the_server_goes_on(server, inputs):
    entry = server.run({"1": load_image("astronaut.png"), "2": one_node("GPEN-broken.pth"),
                        "3": save_image("2", "gpen/broken")})
    assert entry["status"]["status_str"] == "error"
    error = harness.history_error(entry)
    assert error["node_type"] == "GPENFaceRestore"
    assert "GPEN-broken.pth" in error["exception_message"] and "\n" not in error["exception_message"].strip()
    assert error["exception_type"].endswith("ModelLoadError")

    # the next prompt runs: both the one-node restore and the four-node chain
    graph = {"1": load_image("astronaut.png"), "2": one_node(MODEL), "3": save_image("2", "gpen/one"),
             **four_nodes()}
    entry = server.run(graph)
    assert entry["status"]["status_str"] == "success", harness.history_error(entry).get("exception_message")
    original = harness.read_png(inputs / "astronaut.png")
    one, chain = saved(server, entry, "3"), saved(server, entry, "8")
    assert one.shape == chain.shape == original.shape == (256, 256, 3)
    assert np.array_equal(one, chain)  # same defaults, same result
    changed = np.abs(one.astype(int) - original.astype(int)).max(axis=-1) > 2
    assert 0.005 < changed.mean() < 0.25  # the face changed, the rest did not
    crops = harness.saved_images(entry, "9")
    assert len(crops) == 1 and harness.read_png(server.output_file(crops[0])).shape[:2] == (64, 64)
    assert "GPEN-64" in entry["outputs"]["4"]["text"][0]


def test_image_without_faces_comes_out_unchanged(server, inputs):
    graph = {"1": load_image("ramps.png"), "2": one_node(MODEL), "3": save_image("2", "gpen/noface"),
             "4": save_image("1", "gpen/reference")}
    entry = server.run(graph)
    assert entry["status"]["status_str"] == "success", harness.history_error(entry).get("exception_message")
    restored, reference = saved(server, entry, "3"), saved(server, entry, "4")
    assert restored.shape == (96, 128, 3)
    assert np.array_equal(restored, reference)  # identical to the untouched branch
    assert np.abs(restored.astype(int) - harness.read_png(inputs / "ramps.png").astype(int)).max() <= 1


def test_missing_model_is_refused_at_validation_with_where_to_put_it(server, inputs):
    status, answer = server.queue({"1": load_image("astronaut.png"), "2": one_node("GPEN-BFR-512.pth"),
                                   "3": save_image("2", "gpen/missing")})
    assert status == 400
    details = " ".join(e["details"] for e in answer["node_errors"]["2"]["errors"])
    assert "GPEN-BFR-512.pth" in details and "facerestore" in details


def test_example_workflows_are_offered_and_run(server, inputs):
    templates = server.get("/workflow_templates")
    assert set(templates[harness.PACK_NAME]) >= {p.stem for p in harness.example_paths()}
    harness.save_png(harness.face_photo(192), inputs / "example.png")
    info = server.get("/object_info")
    for name in ("GPEN restore faces in one node", "GPEN four nodes, every option"):
        workflow = server.get(f"/api/workflow_templates/{harness.PACK_NAME}/{urllib.parse.quote(name)}.json")
        overrides = {(n["id"], "model_name"): MODEL for n in workflow["nodes"]
                     if n["type"] in ("GPENFaceRestore", "GPENLoadModel")}
        graph = harness.ui_to_api(workflow, lambda t: info[t]["input"], overrides)
        entry = server.run(graph)
        assert entry["status"]["status_str"] == "success", (name, entry["status"])
        save = next(n["id"] for n in workflow["nodes"] if n["type"] == "SaveImage")
        assert saved(server, entry, str(save)).shape == (192, 192, 3)


@pytest.mark.parametrize("mask_mode, strength, color_match", [("official", 1.0, False), ("box", 0.6, True)])
def test_the_nodes_and_the_command_line_give_the_same_image(server, inputs, tmp_path, mask_mode, strength,
                                                            color_match):
    chain = harness.gpen_chain(MODEL, mask_mode=mask_mode)
    chain["7"]["inputs"].update(strength=strength, color_match=color_match)
    one = harness.gpen_one_node(MODEL, mask_mode=mask_mode)
    one["inputs"].update(strength=strength, color_match=color_match)
    graph = {"1": load_image("astronaut.png"), "2": one, "3": save_image("2", "gpen/same_one"), **chain,
             "8": save_image("7", "gpen/same_chain")}
    entry = server.run(graph)
    assert entry["status"]["status_str"] == "success", harness.history_error(entry).get("exception_message")

    cli_out = tmp_path / "cli.png"
    command = [sys.executable, str(harness.REPO / "gpen_cli.py"), "restore", str(inputs / "astronaut.png"),
               "--model", str(server.base / "models" / "facerestore" / MODEL), "-o", str(cli_out),
               "--mask", mask_mode, "--strength", str(strength), "--order", "large-small", "--device", "cpu"]
    done = subprocess.run(command + (["--color-match"] if color_match else []), capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    from_cli = harness.read_png(cli_out).astype(int)
    original = harness.read_png(inputs / "astronaut.png").astype(int)
    assert np.abs(from_cli - original).max() > 20  # the face was restored
    for node in ("3", "8"):
        assert np.abs(saved(server, entry, node).astype(int) - from_cli).max() <= 1, node


def test_our_faces_draw_with_the_core_bounding_box_nodes(server, inputs):
    """Detect Faces' boxes into core Draw BBoxes (ComfyUI 0.33.0 has it), and the boxes back into Face
    Restore, through /prompt."""
    info = server.get("/object_info")
    if "DrawBBoxes" not in info:
        pytest.skip("this ComfyUI has no core bounding-box nodes (they came after 0.3.75)")
    graph = {"1": load_image("astronaut.png"),
             "2": harness.gpen_chain(MODEL)["5"],
             "3": {"class_type": "DrawBBoxes", "inputs": {"image": ["1", 0], "bboxes": ["2", 1]}},
             "4": save_image("3", "gpen/boxes"),
             "5": harness.gpen_one_node(MODEL),
             "6": save_image("5", "gpen/boxed")}
    graph["5"]["inputs"]["bboxes"] = ["2", 1]
    entry = server.run(graph)
    assert entry["status"]["status_str"] == "success", harness.history_error(entry)
    drawn, photo = saved(server, entry, "4"), harness.read_png(inputs / "astronaut.png")
    changed = np.any(drawn[..., :3] != photo[..., :3], axis=2)
    assert changed.any() and changed.mean() < 0.2  # a box drawn around the face, the rest as it was
    assert np.any(saved(server, entry, "6")[..., :3] != photo[..., :3])  # the face in the box was restored


def test_object_info_carries_search_aliases_and_advanced_inputs(server):
    info = server.get("/object_info")["GPENFaceRestore"]
    assert info["input"]["required"]["device"][1]["advanced"] is True
    assert "advanced" not in info["input"]["required"]["strength"][1]
    if "search_aliases" in info:  # sent by ComfyUI 0.33.0 for V1 nodes, not by 0.3.75
        assert "face restore" in info["search_aliases"]
