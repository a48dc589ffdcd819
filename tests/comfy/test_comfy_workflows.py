"""The example workflows (UI format) against the real node definitions: every link joins
matching types, every widget value fits its input, and the graph converts and runs."""
from __future__ import annotations

import json

import numpy as np
import pytest

import comfy_harness as harness
import example_inputs

EXAMPLES = harness.example_paths()
# The file names are the titles ComfyUI's Templates dialog shows (and its descriptions).
ONE_NODE, CHAIN = "GPEN restore faces in one node", "GPEN four nodes, every option"
COLORIZE, INPAINT = "GPEN colorize an old photo", "GPEN inpaint a damaged photo"
CLIP_EXAMPLE = "GPEN restore a clip with sound"  # reads a video file: run by its own test
REQUIRED_EXAMPLES = {ONE_NODE, CHAIN, COLORIZE, INPAINT, "GPEN restore video frames", CLIP_EXAMPLE}
IMAGE_EXAMPLES = [path for path in EXAMPLES if path.stem != CLIP_EXAMPLE]
SMALL = "GPEN-tiny-64.pth"  # installed by the `server` fixture
SIZE = 192
INPUT_OF = {COLORIZE: "wf_old_photo.png", INPAINT: "wf_damaged.png"}
TASK_OF = {COLORIZE: "colorize", INPAINT: "inpaint"}


def load(path):
    return json.loads(path.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def classes(comfy):
    """ComfyUI's node classes: nodes.py, our pack, and the core extras the examples use
    (RepeatImageBatch and the video nodes live in comfy_extras, which the in-process ComfyUI does not load)."""
    import comfy_extras.nodes_images as images
    import comfy_extras.nodes_video as video

    videos = {name: getattr(video, name) for name in ("LoadVideo", "GetVideoComponents", "CreateVideo", "SaveVideo")}
    return {**images.NODE_CLASS_MAPPINGS, **videos, **comfy.nodes.NODE_CLASS_MAPPINGS}


def test_the_required_examples_exist():
    assert REQUIRED_EXAMPLES <= {p.stem for p in EXAMPLES}


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_each_example_has_a_readable_title_and_its_own_small_thumbnail(path):
    """The Templates dialog shows the file name as title and (with '-' and '_' as spaces) as
    description, and `<name>.jpg` beside it as thumbnail (made by scripts/screenshot_workflow.py)."""
    from PIL import Image

    assert path.stem.startswith("GPEN ") and not set("-_") & set(path.stem), path.stem
    thumbnail = path.with_suffix(".jpg")
    with Image.open(thumbnail) as image:
        assert image.format == "JPEG" and image.width <= 640
    assert 5_000 < thumbnail.stat().st_size < 80_000


# The area of a 1400x800 window that the frontend's top bars, the left sidebar and the canvas
# controls at the bottom leave free (frontends 1.32.9 and 1.58.1), in page pixels.
FREE_AREA = (70, 135, 1390, 750)
TITLE_HEIGHT = 30


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_each_example_opens_in_view_with_no_node_over_another(path):
    """The saved view shows every node in the free area and no two nodes (title bars included)
    overlap, at the sizes saved (the frontend only ever grows them: the sizes leave room for the
    run's previews)."""
    workflow = load(path)
    scale, (dx, dy) = workflow["extra"]["ds"]["scale"], workflow["extra"]["ds"]["offset"]
    boxes = {n["id"]: (n["pos"][0], n["pos"][1] - TITLE_HEIGHT, n["pos"][0] + n["size"][0],
                       n["pos"][1] + n["size"][1]) for n in workflow["nodes"]}
    left, top, right, bottom = FREE_AREA
    for node_id, (x0, y0, x1, y1) in boxes.items():
        page = ((x0 + dx) * scale, (y0 + dy) * scale, (x1 + dx) * scale, (y1 + dy) * scale)
        assert left <= page[0] and top <= page[1] and page[2] <= right and page[3] <= bottom, (node_id, page)
    for a, p in boxes.items():
        for b, q in boxes.items():
            assert a >= b or not (p[0] < q[2] and q[0] < p[2] and p[1] < q[3] and q[1] < p[3]), (a, b)


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_links_join_matching_slots(classes, path):
    workflow = load(path)
    nodes = {n["id"]: n for n in workflow["nodes"]}
    assert workflow["version"] == 0.4 and workflow["last_node_id"] == max(nodes)
    assert workflow["last_link_id"] == max(link[0] for link in workflow["links"])
    used = {n["type"] for n in workflow["nodes"]}
    assert any(t.startswith("GPEN") for t in used) and used & {"LoadImage", "LoadVideo"}
    for link_id, (src, src_slot, dst, dst_slot, kind) in harness.link_table(workflow).items():
        source, target = nodes[src], nodes[dst]
        assert link_id in source["outputs"][src_slot]["links"]
        assert target["inputs"][dst_slot]["link"] == link_id
        assert classes[source["type"]].RETURN_TYPES[src_slot] == kind
        spec = classes[target["type"]].INPUT_TYPES()
        name = target["inputs"][dst_slot]["name"]
        declared = {**spec["required"], **spec.get("optional", {})}[name][0]
        assert declared == kind, f"link {link_id}: {kind} into {target['type']}.{name} ({declared})"


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_widget_values_fit_the_inputs(classes, path):
    for node in load(path)["nodes"]:
        if not node["type"].startswith("GPEN"):
            continue
        widgets = harness.widget_inputs(classes[node["type"]].INPUT_TYPES())
        values = node["widgets_values"]
        assert len(values) == len(widgets), f"{node['type']}: {len(values)} values for {len(widgets)} widgets"
        for (name, spec), value in zip(widgets, values):
            kind, options = spec[0], spec[1]
            if isinstance(kind, (list, tuple)):
                assert name == "model_name" or value in kind, f"{node['type']}.{name}={value!r}"
            elif kind in ("INT", "FLOAT"):
                assert options["min"] <= value <= options["max"], f"{node['type']}.{name}={value!r}"
                assert value == options["default"], f"{node['type']}.{name}: examples use the defaults"


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_example_converts_to_a_valid_prompt(classes, path):
    graph = harness.ui_to_api(load(path), lambda t: classes[t].INPUT_TYPES())
    for node_id, node in graph.items():
        spec = classes[node["class_type"]].INPUT_TYPES()
        missing = set(spec["required"]) - set(node["inputs"])
        assert not missing, f"node {node_id} ({node['class_type']}) lacks {missing}"


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_core_node_numbers_fit_their_inputs(classes, path):
    for node in load(path)["nodes"]:
        if node["type"].startswith("GPEN"):
            continue
        for (name, spec), value in zip(harness.widget_inputs(classes[node["type"]].INPUT_TYPES()),
                                       node["widgets_values"]):
            if spec[0] in ("INT", "FLOAT"):
                assert spec[1]["min"] <= value <= spec[1]["max"], f"{node['type']}.{name}={value!r}"


# --------------------------------------------------------------------------- run in the real server


@pytest.fixture(scope="module")
def example_server(server):
    """The server with the inputs the examples read, and the small model under the released
    Colorization/Inpainting names (removed afterwards: other tests list the folder)."""
    folder = server.base / "models" / "facerestore"
    released = {name for path in EXAMPLES for name in harness.model_names(load(path)) if harness.names_a_task(name)}
    installed = [harness.put_model(folder, name) for name in sorted(released)]
    photo = harness.face_photo(SIZE)
    inputs = server.base / "input"
    harness.save_png(photo, inputs / "wf_photo.png")
    harness.save_png(np.ascontiguousarray(photo[:, ::-1]), inputs / "wf_photo_mirrored.png")
    harness.save_png(example_inputs.grey_photo(photo), inputs / "wf_old_photo.png")
    harness.save_png(harness.with_damage(photo, example_inputs.DAMAGE), inputs / "wf_damaged.png")
    try:
        yield server
    finally:
        for path in installed:
            path.unlink()


def saved_arrays(server, entry: dict, node_id: str) -> list[np.ndarray]:
    refs = harness.saved_images(entry, node_id)
    return [harness.read_png(server.output_file(ref)) for ref in refs]


def run_example(server, workflow: dict, image_name: str) -> tuple[dict, dict]:
    info = server.get("/object_info")
    graph = harness.ui_to_api(workflow, lambda t: info[t]["input"],
                              harness.example_overrides(workflow, image_name, SMALL))
    entry = server.run(graph)
    assert entry["status"]["status_str"] == "success", harness.history_error(entry)
    return graph, entry


@pytest.mark.parametrize("path", IMAGE_EXAMPLES, ids=lambda p: p.stem)
def test_example_runs_and_changes_only_the_faces(example_server, path):
    server, workflow = example_server, load(path)
    image_name = INPUT_OF.get(path.stem, "wf_photo.png")
    original = harness.read_png(server.base / "input" / image_name)[..., :3].astype(int)
    info = server.get("/object_info")
    graph = harness.ui_to_api(workflow, lambda t: info[t]["input"],
                              harness.example_overrides(workflow, image_name, SMALL))
    kinds = {n["type"] for n in workflow["nodes"]}
    paster = harness.node_of(workflow, "GPENPasteBack" if "GPENPasteBack" in kinds else "GPENFaceRestore")
    graph, mask_save = harness.with_mask_saved(graph, paster, 1, f"gpen/test_{path.stem}_mask")
    entry = server.run(graph)
    assert entry["status"]["status_str"] == "success", harness.history_error(entry)

    frames = next((n["widgets_values"][0] for n in workflow["nodes"] if n["type"] == "RepeatImageBatch"), 1)
    images = saved_arrays(server, entry, harness.node_of(workflow, "SaveImage"))
    masks = [m[..., 0] / 255.0 for m in saved_arrays(server, entry, mask_save)]
    assert len(images) == len(masks) == frames
    for image, mask in zip(images, masks):
        assert image.shape == (SIZE, SIZE, 3) and mask.shape == (SIZE, SIZE)
        changed = np.abs(image.astype(int) - original).max(axis=-1) > 2
        assert 0.005 < changed.mean() < 0.5, changed.mean()
        assert not (changed & (mask == 0)).any(), "pixels changed outside the paste mask"
    assert all(np.array_equal(images[0], other) for other in images[1:])  # equal frames, equal results

    if "GPENLoadModel" in kinds:
        summary = entry["outputs"][harness.node_of(workflow, "GPENLoadModel")]["text"][0]
        assert f"task {TASK_OF.get(path.stem, 'restore')}" in summary, summary
    face = masks[0] > 0.9
    if path.stem == COLORIZE:  # keep_gray=auto must not turn the colorized face grey again
        chroma = images[0].astype(int).max(axis=-1) - images[0].astype(int).min(axis=-1)
        assert (chroma[face] > 8).mean() > 0.5 and chroma[masks[0] == 0].max() <= 1  # 8-bit mask rounding
    if path.stem == INPAINT:  # the damage lies over the face and was painted over
        damage = harness.read_png(server.base / "input" / image_name)[..., 3] == 0
        assert (masks[0][damage] > 0.5).mean() > 0.9
        assert (np.abs(images[0].astype(int) - original).max(axis=-1)[damage] > 2).mean() > 0.5


def test_the_clip_example_restores_every_frame_of_a_video_and_keeps_its_frame_rate(example_server, astronaut):
    """The clip workflow on a 12-frame clip with a face drifting across (made with PyAV): Save Video
    writes as many frames at the same rate, and the face changed in every frame while the margins
    kept their grey (within the video codec's error)."""
    import av

    server, workflow = example_server, load(harness.EXAMPLES / f"{CLIP_EXAMPLE}.json")
    frames = example_inputs.clip_frames(example_inputs.clip_face(astronaut))
    example_inputs.write_clip(server.base / "input" / "wf_clip.mp4", frames, rate=12)
    info = server.get("/object_info")
    overrides = {**harness.example_overrides(workflow, "unused.png", SMALL),
                 (int(harness.node_of(workflow, "LoadVideo")), "file"): "wf_clip.mp4"}
    entry = server.run(harness.ui_to_api(workflow, lambda t: info[t]["input"], overrides), timeout=300)
    assert entry["status"]["status_str"] == "success", harness.history_error(entry)
    saved = harness.saved_images(entry, harness.node_of(workflow, "SaveVideo"))
    with av.open(str(server.output_file(saved[0]))) as result:
        stream = result.streams.video[0]
        assert stream.average_rate == 12
        restored = [f.to_ndarray(format="rgb24").astype(int) for f in result.decode(stream)]
    assert len(restored) == len(frames)
    for index, (before, after) in enumerate(zip(frames, restored)):
        face_cols = slice(30 + 2 * index, 106 + 2 * index)
        assert np.abs(after[:, face_cols] - before[:, face_cols]).mean() > 4, f"frame {index}: face unchanged"
        assert np.abs(after[:, :12] - 90).max() <= 6 and np.abs(after[:, -12:] - 90).max() <= 6


def test_a_second_run_reuses_the_loaded_model(example_server):
    """Run the four-node chain on one photo and then on another: ComfyUI takes the loader's output
    from its cache (no second "[GPEN] loaded" log line) while detection runs again."""
    server, workflow = example_server, load(harness.EXAMPLES / f"{CHAIN}.json")
    loader, detect = harness.node_of(workflow, "GPENLoadModel"), harness.node_of(workflow, "GPENDetectFaces")
    run_example(server, workflow, "wf_photo.png")
    loads_before = server.log_tail(10**7).count("[GPEN] loaded ")
    _, entry = run_example(server, workflow, "wf_photo_mirrored.png")
    assert loader in harness.cached_nodes(entry) and detect not in harness.cached_nodes(entry)
    assert server.log_tail(10**7).count("[GPEN] loaded ") == loads_before
    assert loads_before >= 1  # the log does show loads: the count above can fail


# --------------------------------------------------------------------------- workflows saved before


PREVIOUS = harness.REPO / "tests" / "fixtures" / "previous_release"
# The example workflows of the previous release (8feeffb), and where their widget values landed
# then (widgets_landed.json: per workflow, per GPEN node id, input name -> value, dumped by loading
# that commit's pack in ComfyUI 0.3.75 and pairing each node's widget inputs with its values).
LANDED = json.loads((PREVIOUS / "widgets_landed.json").read_text(encoding="utf-8"))


@pytest.mark.parametrize("name", sorted(LANDED))
def test_widget_values_of_a_workflow_saved_before_land_where_they_did(classes, name):
    workflow = load(PREVIOUS / name)
    for node in workflow["nodes"]:
        if node["type"].startswith("GPEN"):
            widgets = [input_name for input_name, _ in harness.widget_inputs(classes[node["type"]].INPUT_TYPES())]
            assert len(widgets) >= len(node["widgets_values"])
            assert dict(zip(widgets, node["widgets_values"])) == LANDED[name][str(node["id"])], node["type"]


def test_a_workflow_saved_before_still_runs(example_server):
    run_example(example_server, load(PREVIOUS / "gpen_four_node_chain.json"), "wf_photo.png")
