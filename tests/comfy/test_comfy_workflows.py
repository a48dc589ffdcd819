"""The example workflows (UI format) against the real node definitions: every link joins
matching types, every widget value fits its input, and the graph converts and runs."""
from __future__ import annotations

import json

import pytest

import comfy_harness as harness

EXAMPLES = sorted(harness.EXAMPLES.glob("*.json"))
REQUIRED_EXAMPLES = {"gpen_face_restore", "gpen_four_node_chain"}


def load(path):
    return json.loads(path.read_text(encoding="utf-8"))


def test_the_required_examples_exist():
    assert REQUIRED_EXAMPLES <= {p.stem for p in EXAMPLES}


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_links_join_matching_slots(comfy, path):
    workflow = load(path)
    nodes = {n["id"]: n for n in workflow["nodes"]}
    classes = comfy.nodes.NODE_CLASS_MAPPINGS
    assert workflow["version"] == 0.4 and workflow["last_node_id"] == max(nodes)
    assert workflow["last_link_id"] == max(link[0] for link in workflow["links"])
    used = {n["type"] for n in workflow["nodes"]}
    assert any(t.startswith("GPEN") for t in used) and {"LoadImage"} <= used
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
def test_widget_values_fit_the_inputs(comfy, path):
    classes = comfy.nodes.NODE_CLASS_MAPPINGS
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
def test_example_converts_to_a_valid_prompt(comfy, path):
    classes = comfy.nodes.NODE_CLASS_MAPPINGS
    graph = harness.ui_to_api(load(path), lambda t: classes[t].INPUT_TYPES())
    for node_id, node in graph.items():
        spec = classes[node["class_type"]].INPUT_TYPES()
        missing = set(spec["required"]) - set(node["inputs"])
        assert not missing, f"node {node_id} ({node['class_type']}) lacks {missing}"
