"""Hostile values through ComfyUI, as a JSON client sends them to POST /prompt: NaN and infinities
(ComfyUI's own min/max checks let NaN through), thresholds below any use, face ranges of millions
and trillions. Each is refused at validation with the options' own sentence, or applied at the
cost of the faces found: never a frozen server, never a run that reports success and does nothing."""
from __future__ import annotations

import math
import tracemalloc
from pathlib import Path

import pytest

import comfy_harness as harness

MODEL = "GPEN-tiny-64.pth"
IMAGE = "values-astronaut.png"


@pytest.fixture(scope="module")
def server_image(server):
    harness.save_png(harness.face_photo(256), server.base / "input" / IMAGE)
    return IMAGE


def chain(**changes) -> dict:
    """LoadImage -> the four GPEN nodes -> SaveImage; `changes` {node id: {input: value}}."""
    graph = {"1": {"class_type": "LoadImage", "inputs": {"image": IMAGE}}, **harness.gpen_chain(MODEL),
             "8": {"class_type": "SaveImage", "inputs": {"images": ["7", 0], "filename_prefix": "gpen/values"}}}
    for node_id, inputs in changes.items():
        graph[node_id]["inputs"].update(inputs)
    return graph


def one_node(**inputs) -> dict:
    restore = harness.gpen_one_node(MODEL)
    restore["inputs"].update(inputs)
    return {"1": {"class_type": "LoadImage", "inputs": {"image": IMAGE}}, "2": restore,
            "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "gpen/values"}}}


def refusal(server, graph: dict, node_id: str) -> str:
    """The validation details of `node_id` when /prompt refuses it (an AssertionError otherwise).
    The Detect node is an output of its own, so /prompt may still queue it while refusing the rest."""
    status, answer = server.queue(graph)
    assert node_id in answer.get("node_errors", {}), (status, answer)
    errors = answer["node_errors"][node_id]["errors"]
    details = [e["details"] for e in errors]
    assert all("\n" not in d and len(d) < 1000 for d in details), details
    return " ".join(details)


@pytest.mark.parametrize("graph, node_id, words", [
    (chain(**{"7": {"feather": math.nan}}), "7", "feather (-1: the mask mode's own) must be a number from -1 to 50"),
    (chain(**{"7": {"feather": "nan"}}), "7", "got nan"),
    (chain(**{"7": {"grow": math.nan}}), "7", "grow (in % of the face) must be a number from -20 to 20, got nan"),
    (chain(**{"7": {"grow": math.inf}}), "7", "grow"),
    (chain(**{"7": {"strength": math.nan}}), "7", "strength must be a number from 0 to 1, got nan"),
    (chain(**{"5": {"threshold": math.nan}}), "5", "threshold must be a number from 0.05 to 1, got nan"),
    (chain(**{"5": {"threshold": 0.0}}), "5", "threshold must be a number from 0.05 to 1, got 0.0"),
    (chain(**{"5": {"indices": "1;2"}}), "5", "is not an index or a range"),
    (chain(**{"5": {"indices": "0," * 600}}), "5", "1200 characters is more than the 1000 accepted"),
    (one_node(strength=math.nan), "2", "strength must be a number from 0 to 1, got nan"),
    (one_node(threshold=-math.inf), "2", "threshold must be a number from 0.05 to 1, got -inf"),
    (chain(**{"5": {"smoothing": math.nan}}), "5", "smoothing (0: off) must be a number from 0 to 1, got nan"),
    (chain(**{"7": {"min_identity": math.nan}}), "7", "min_identity must be a number from 0 to 1, got nan"),
    (chain(**{"5": {"reference_threshold": math.inf}}), "5", "reference_threshold must be a number from 0 to 1"),
    (one_node(min_identity=-0.5), "2", "min_identity must be a number from 0 to 1, got -0.5"),
    (chain(**{"7": {"sharpness_limit": math.nan}}), "7", "sharpness_limit (0: off) must be a number from 0 to 4"),
    (one_node(sharpness_limit=0.5), "2", "sharpness_limit (0: off) must be 0 or a number from 1 to 4, got 0.5"),
    (one_node(model_name="GPEN-" + "x" * 100_000 + ".pth"), "2", "is in none of the model folders"),
])
def test_values_no_run_could_use_are_refused_at_validation_with_one_sentence(server, server_image, graph, node_id,
                                                                             words):
    """On the last release NaN feather and grow ran, reported success and changed no pixel."""
    assert words in refusal(server, graph, node_id)


def test_a_range_to_a_hundred_trillion_keeps_every_face_from_the_first(server, server_image):
    """It used to fail validation with an empty message: the range was expanded into a list."""
    entry = server.run(chain(**{"5": {"indices": "0-99999999999999"}}))
    assert entry["status"]["status_str"] == "success", harness.history_error(entry)
    assert entry["outputs"]["5"]["text"] == ["1 face(s) in 1 image(s): 1"]


def test_validating_a_range_of_millions_costs_nothing(comfy):
    """"0-3000000" was expanded into a list of three million positions inside validation (and
    "0-50000000" into gigabytes, blocking the server for seconds); its cost is that of "0" now."""
    harness.save_png(harness.face_photo(64), Path(comfy.folder_paths.get_input_directory()) / IMAGE)

    def validation_peak(indices: str) -> int:
        graph = {key: node for key, node in chain(**{"5": {"indices": indices}}).items() if key in ("1", "5")}
        tracemalloc.start()
        try:
            valid = comfy.loop.run_until_complete(comfy.execution.validate_prompt("values", graph, None))[0]
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert valid
        return peak

    assert validation_peak("0-3000000") < validation_peak("0") + 100_000
