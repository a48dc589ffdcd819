"""GPENLoadModel and the folder registration, in a real ComfyUI imported in-process."""
from __future__ import annotations

import os
import shutil
import time

import pytest
import torch

import comfy_harness as harness
from fixture_files import S64_NOCONCAT_MODEL_FILE

LOADER = "GPENLoadModel"


def loader(comfy):
    return comfy.nodes.NODE_CLASS_MAPPINGS[LOADER]()


def test_folders_are_merged_not_replaced(comfy):
    fp = comfy.folder_paths
    paths, exts = fp.folder_names_and_paths["facerestore"]
    default = os.path.join(fp.models_dir, "facerestore")
    extra = str(comfy.extra_root / "gpen")
    # the yaml path (added before our pack loaded) is still there, after our default
    assert paths.index(default) == 0 and extra in paths
    assert {".pth", ".pt", ".bin", ".safetensors", ".onnx"} <= set(exts)
    for name in ("facerestore_models", "facedetection", "insightface"):
        assert os.path.join(fp.models_dir, name) in fp.get_folder_paths(name)
        assert ".onnx" in fp.folder_names_and_paths[name][1]


def test_extension_set_keeps_readmes_out(comfy):
    folder = comfy.base / "models" / "facerestore"
    (folder / "README.txt").write_text("put GPEN files here")
    try:
        # the directory mtime changed, so ComfyUI's listing cache is refreshed
        assert "README.txt" not in comfy.folder_paths.get_filename_list("facerestore")
        assert "README.txt" not in comfy.common.list_model_files()
    finally:
        (folder / "README.txt").unlink()


def test_model_list_holds_all_folders_and_skips_other_restorers(comfy):
    options = comfy.nodes.NODE_CLASS_MAPPINGS[LOADER].INPUT_TYPES()["required"]["model_name"][0]
    assert {"GPEN-tiny-64.pth", "GPEN-BFR-tiny-reactor.pth", "GPEN-tiny-extra.pth"} <= set(options)
    assert options.index("GPEN-tiny-64.pth") < options.index("GPEN-BFR-tiny-reactor.pth")
    assert not any("codeformer" in o.lower() for o in options)


@pytest.mark.parametrize("name", ["GPEN-tiny-64.pth", "GPEN-BFR-tiny-reactor.pth", "GPEN-tiny-extra.pth"])
def test_loads_from_every_folder_through_a_model_patcher(comfy, name):
    out = loader(comfy).load(name, "auto", "auto")
    handle = out["result"][0]
    assert type(handle).__name__ == "GPENModelHandle"
    assert handle.model.size == 64 and handle.model.task == "restore" and handle.model.backend == "torch"
    assert handle.model.precision == "fp32"  # ComfyUI says no fp16 on the CPU
    assert handle.name == name and os.path.basename(handle.model.source) == name
    from comfy.model_patcher import ModelPatcher

    assert isinstance(handle.patcher, ModelPatcher)
    assert handle.patcher.load_device == comfy.mm.get_torch_device()
    assert handle.patcher.offload_device == comfy.mm.unet_offload_device()
    text = out["ui"]["text"][0]
    assert name in text and "GPEN-64" in text and "fp32" in text

    model = comfy.common.ready_model(handle)
    assert any(p is handle.patcher for p in comfy.mm.loaded_models())
    x = torch.zeros(1, 3, 64, 64)
    y = model(x)
    assert y.shape == (1, 3, 64, 64) and torch.isfinite(y).all()


def test_frozen_handle(comfy):
    handle = loader(comfy).load("GPEN-tiny-64.pth", "cpu", "fp32")["result"][0]
    with pytest.raises(AttributeError):
        handle.model = None


def test_cache_reuses_and_replaced_file_is_reloaded(comfy):
    folder = comfy.base / "models" / "facerestore"
    path = harness.put_model(folder, "GPEN-swap.pth")
    node = loader(comfy)
    stamp = node.IS_CHANGED("GPEN-swap.pth")
    first = node.load("GPEN-swap.pth", "cpu", "fp32")["result"][0]
    again = node.load("GPEN-swap.pth", "cpu", "fp32")["result"][0]
    assert again is first
    assert first.model.config.isconcat is True

    time.sleep(0.01)  # a distinct mtime even on coarse clocks
    shutil.copyfile(S64_NOCONCAT_MODEL_FILE, path)
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 1_000_000))
    assert node.IS_CHANGED("GPEN-swap.pth") != stamp  # ComfyUI re-runs the loader
    replaced = node.load("GPEN-swap.pth", "cpu", "fp32")["result"][0]
    assert replaced is not first
    assert replaced.model.config.isconcat is False and replaced.model.config.channel_multiplier == 2


@pytest.mark.parametrize("precision,dtype", [("fp32", torch.float32), ("bf16", torch.bfloat16)])
def test_precision_is_applied(comfy, precision, dtype):
    handle = loader(comfy).load("GPEN-tiny-64.pth", "cpu", precision)["result"][0]
    assert handle.model.precision == precision
    assert next(handle.model.network.parameters()).dtype == dtype


def test_corrupt_model_error_names_the_file_and_the_process_goes_on(comfy):
    folder = comfy.base / "models" / "facerestore"
    harness.write_corrupt_model(folder, "GPEN-broken.pth")
    with pytest.raises(ValueError) as info:
        loader(comfy).load("GPEN-broken.pth", "auto", "auto")
    message = str(info.value)
    assert "GPEN-broken.pth" in message and "\n" not in message
    assert type(info.value).__name__ == "ModelLoadError"
    # a good model still loads afterwards
    assert loader(comfy).load("GPEN-tiny-64.pth", "auto", "auto")["result"][0].model.size == 64


def test_wrong_kind_of_model_is_named(comfy, tmp_path):
    folder = comfy.base / "models" / "facerestore"
    torch.save({"conv_body_first.weight": torch.zeros(4, 3, 3, 3),
                "stylegan_decoder.style_mlp.1.weight": torch.zeros(4, 4)}, folder / "GPEN-actually-gfpgan.pth")
    with pytest.raises(ValueError, match="GPEN-actually-gfpgan.pth.*GFPGAN"):
        loader(comfy).load("GPEN-actually-gfpgan.pth", "auto", "auto")


def test_missing_model_is_explained_at_validation(comfy):
    cls = comfy.nodes.NODE_CLASS_MAPPINGS[LOADER]
    assert cls.VALIDATE_INPUTS("GPEN-tiny-64.pth") is True
    message = cls.VALIDATE_INPUTS("GPEN-BFR-512.pth")
    assert isinstance(message, str) and "GPEN-BFR-512.pth" in message
    assert str(comfy.base / "models" / "facerestore") in message
    # A released file is fetched by its own name, not by the command that fetches BFR-512.
    released = cls.VALIDATE_INPUTS("GPEN-BFR-1024.pth")
    assert "install.py --download --model GPEN-BFR-1024.pth" in released and "download box" in released
    assert "--model" not in cls.VALIDATE_INPUTS("my-gpen.pth")
    with pytest.raises(FileNotFoundError, match="GPEN-BFR-512.pth"):
        loader(comfy).load("GPEN-BFR-512.pth", "auto", "auto")


def test_onnx_model_runs_without_a_patcher(comfy, s64_model):
    import gpen_arch

    folder = comfy.base / "models" / "facerestore"
    gpen_arch.export_onnx(s64_model, folder / "GPEN-tiny-64.onnx")
    out = loader(comfy).load("GPEN-tiny-64.onnx", "auto", "auto")
    handle = out["result"][0]
    assert handle.patcher is None and handle.model.backend == "onnx" and handle.model.size == 64
    assert "ONNX" in out["ui"]["text"][0]
    x = torch.rand(1, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        expected = s64_model(x)
    assert torch.allclose(comfy.common.ready_model(handle)(x), expected, atol=1e-3)
