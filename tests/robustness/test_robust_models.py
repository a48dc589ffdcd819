"""Model files from anywhere: every bad file gets one clear sentence naming it, never a
traceback from inside torch, never a hang, and never runs code. Through the three entry
points: gpen_arch.load_model, `gpen_cli.py info/restore`, and the nodes in a real ComfyUI."""
from __future__ import annotations

import builtins
import io
import json
import os
import pickle
import re
import shutil
import struct
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import gpen_arch
from gpen_arch import ModelLoadError

import comfy_harness as harness
import robustness_support as support
from fixture_files import S64_MODEL_FILE, load_fixture_model
from helpers import malformed_models as malformed

MARKER_NAME = "CODE-WAS-RUN"


# --------------------------------------------------------------------------- payloads that would run code


class SystemCall:
    """Unpickling this runs a shell command (the classic poisoned checkpoint)."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch '{self.marker}'",))


class ExecCall:
    """Unpickling this runs Python source through builtins.exec."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (builtins.exec, (f"open({str(self.marker)!r}, 'w').close()",))


# --------------------------------------------------------------------------- file builders


def tiny_state_dict() -> dict[str, torch.Tensor]:
    return torch.load(S64_MODEL_FILE, map_location="cpu", weights_only=True)


def safetensors_bytes(_folder: Path | None = None) -> bytes:
    from safetensors.torch import save

    return save({k: v.contiguous() for k, v in tiny_state_dict().items()})


def split_safetensors(data: bytes) -> tuple[dict, bytes]:
    n = struct.unpack("<Q", data[:8])[0]
    return json.loads(data[8:8 + n]), data[8 + n:]


def with_header(header: dict, body: bytes, declared_length: int | None = None) -> bytes:
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw) if declared_length is None else declared_length) + raw + body


def edit_first_tensor(**changes) -> Callable[[Path], bytes]:
    def build(_folder: Path) -> bytes:
        header, body = split_safetensors(safetensors_bytes())
        first = next(k for k in header if k != "__metadata__")
        header[first] = {**header[first], **changes}
        return with_header(header, body)
    return build


def declared_header_length(length: int) -> Callable[[Path], bytes]:
    def build(_folder: Path) -> bytes:
        header, body = split_safetensors(safetensors_bytes())
        return with_header(header, body, declared_length=length)
    return build


def cut(source: Callable[[Path], bytes], where: Callable[[int], int]) -> Callable[[Path], bytes]:
    def build(folder: Path) -> bytes:
        data = source(folder)
        return data[:where(len(data))]
    return build


def pickled(obj_of: Callable[[Path], object], legacy: bool = False) -> Callable[[Path], bytes]:
    def build(folder: Path) -> bytes:
        path = folder / "scratch.pt"
        torch.save(obj_of(folder / MARKER_NAME), path, _use_new_zipfile_serialization=not legacy)
        data = path.read_bytes()
        path.unlink()
        return data
    return build


def raw_pickle(folder: Path) -> bytes:
    return pickle.dumps({"generator.style.1.weight": SystemCall(folder / MARKER_NAME)}, protocol=2)


def gpen_with(payload_cls) -> Callable[[Path], dict]:
    """A real GPEN state_dict with one extra entry that would run code."""
    def obj(marker: Path) -> dict:
        return {**tiny_state_dict(), "hook": payload_cls(marker)}
    return obj


def state_dict_of(make_module: Callable[[], torch.nn.Module], container: str | None = None) -> Callable[[Path], bytes]:
    def build(folder: Path) -> bytes:
        sd = make_module().state_dict()
        return pickled(lambda _m: {container: sd} if container else sd)(folder)
    return build


def gfpgan():
    from spandrel.architectures.GFPGAN.__arch.gfpganv1_clean_arch import GFPGANv1Clean

    return GFPGANv1Clean(out_size=64, num_style_feat=64, channel_multiplier=1, narrow=0.125, sft_half=True,
                         different_w=True)


def restoreformer():
    from spandrel.architectures.RestoreFormer.__arch.restoreformer_arch import RestoreFormer

    return RestoreFormer(n_embed=16, embed_dim=32, ch=32, ch_mult=(1, 2), num_res_blocks=1, attn_resolutions=(8,),
                         resolution=16, z_channels=32, head_size=2)


def esrgan():
    from spandrel.architectures.ESRGAN.__arch.RRDB import RRDBNet

    return RRDBNet(num_filters=8, num_blocks=1, scale=4)


def swinir():
    import warnings

    from spandrel.architectures.SwinIR.__arch.SwinIR import SwinIR

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return SwinIR(img_size=16, embed_dim=12, depths=[1], num_heads=[2], window_size=4, upscale=2,
                      upsampler="pixelshuffle")


def retinaface():
    from facexlib.detection.retinaface import RetinaFace

    return RetinaFace(network_name="mobile0.25", half=False, device="cpu")


def parsenet():
    from facexlib.parsing.parsenet import ParseNet

    return ParseNet(in_size=64, out_size=64, parsing_ch=19)


def codeformer_keys(folder: Path) -> bytes:
    # No CodeFormer class ships in this environment; its released tensor names are used instead.
    names = ["encoder.blocks.0.weight", "quantize.embedding.weight", "position_emb",
             "ft_layers.0.self_attn.in_proj_weight", "idx_pred_layer.0.weight", "generator.blocks.0.weight"]
    return pickled(lambda _m: {"params_ema": {k: torch.zeros(2, 2) for k in names}})(folder)


def onnx_identity(inputs: list[tuple[str, list]], output_shape: list | None = None) -> Callable[[Path], bytes]:
    """A tiny ONNX whose first input is resized to `output_shape` (or passed through)."""
    def build(_folder: Path) -> bytes:
        import onnx
        from onnx import TensorProto, helper

        first = inputs[0][0]
        graph_inputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in inputs]
        if output_shape is None:
            nodes = [helper.make_node("Identity", [first], ["output"])]
            out = helper.make_tensor_value_info("output", TensorProto.FLOAT, inputs[0][1])
            inits = []
        else:
            scales = onnx.numpy_helper.from_array(
                np.array([1, 1, output_shape[2] / inputs[0][1][2], output_shape[3] / inputs[0][1][3]], np.float32),
                "scales")
            nodes = [helper.make_node("Resize", [first, "", "scales"], ["output"], mode="nearest")]
            out = helper.make_tensor_value_info("output", TensorProto.FLOAT, output_shape)
            inits = [scales]
        graph = helper.make_graph(nodes, "g", graph_inputs, [out], initializer=inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
        return model.SerializeToString()
    return build


def scrfd_onnx(folder: Path) -> bytes:
    from helpers.detector_scrfd_onnx import make_scrfd_onnx

    path = make_scrfd_onnx(folder / "scratch-scrfd.onnx")
    data = path.read_bytes()
    path.unlink()
    return data


def gpen_onnx_bytes(folder: Path) -> bytes:
    path = gpen_arch.export_onnx(load_fixture_model(S64_MODEL_FILE), folder / "scratch-gpen.onnx")
    data = path.read_bytes()
    path.unlink()
    return data


def TINY_BYTES(_folder: Path) -> bytes:
    return S64_MODEL_FILE.read_bytes()
LFS_POINTER = (b"version https://git-lfs.github.com/spec/v1\n"
               b"oid sha256:4d0a4bd5b2d4bd2f18c1f1ce3ebf67dfc1f6c3a2c5ff0e5c0c4de8d7a4f0b1c9\nsize 284085738\n")
HTML_PAGE = b"<!DOCTYPE html>\n<html><head><title>Sign in</title></head><body>Please sign in</body></html>\n"


# name -> (builder(folder) -> bytes, regex the message must match)
BAD_FILES: dict[str, tuple[Callable[[Path], bytes], str]] = {
    # empty and cut-off files
    "empty.pth": (lambda f: b"", r"empty \(0 bytes\)"),
    "empty.safetensors": (lambda f: b"", r"empty \(0 bytes\)"),
    "empty.onnx": (lambda f: b"", r"empty \(0 bytes\)"),
    "cut-1-byte.pth": (cut(TINY_BYTES, lambda n: 1), "truncated or corrupt"),
    "cut-64-bytes.pth": (cut(TINY_BYTES, lambda n: 64), "truncated or corrupt"),
    "cut-4kb.pth": (cut(TINY_BYTES, lambda n: 4096), "truncated or corrupt"),
    "cut-half.pth": (cut(TINY_BYTES, lambda n: n // 2), "truncated or corrupt"),
    "cut-last-byte.pth": (cut(TINY_BYTES, lambda n: n - 1), "truncated or corrupt"),
    "cut-in-length.safetensors": (cut(safetensors_bytes, lambda n: 5), "truncated or corrupt"),
    "cut-in-header.safetensors": (cut(safetensors_bytes, lambda n: 200), "truncated or corrupt"),
    "cut-in-tensors.safetensors": (cut(safetensors_bytes, lambda n: n // 2), "truncated or corrupt"),
    "cut-last-byte.safetensors": (cut(safetensors_bytes, lambda n: n - 1), "truncated or corrupt"),
    "cut-half.onnx": (cut(gpen_onnx_bytes, lambda n: n // 2), "not a readable ONNX model"),
    "random.pth": (lambda f: np.random.default_rng(1).bytes(5000), "truncated or corrupt"),
    "random.safetensors": (lambda f: np.random.default_rng(2).bytes(5000), "truncated or corrupt"),
    "random.onnx": (lambda f: np.random.default_rng(3).bytes(5000), "not a readable ONNX model"),
    # what a failed download or an un-pulled git clone leaves
    "lfs-pointer.pth": (lambda f: LFS_POINTER, "Git LFS pointer"),
    "lfs-pointer.safetensors": (lambda f: LFS_POINTER, "Git LFS pointer"),
    "lfs-pointer.onnx": (lambda f: LFS_POINTER, "Git LFS pointer"),
    "login-page.pth": (lambda f: HTML_PAGE, "web page"),
    "error-reply.pth": (lambda f: b'{"error": "Repository not found", "status": 404, "hint": "check the name"}',
                        r"is a text file, not a model: it starts with '\{\"error\""),
    # safetensors headers that lie
    "offset-1tb.safetensors": (edit_first_tensor(data_offsets=[0, 10 ** 12]), "not a readable .safetensors"),
    "offset-past-end.safetensors": (edit_first_tensor(data_offsets=[10 ** 6, 10 ** 6 + 16]),
                                    "not a readable .safetensors"),
    "offsets-backwards.safetensors": (edit_first_tensor(data_offsets=[64, 8]), "not a readable .safetensors"),
    "shape-2e62.safetensors": (edit_first_tensor(shape=[2 ** 31, 2 ** 31]), "not a readable .safetensors"),
    "shape-negative.safetensors": (edit_first_tensor(shape=[-1, 3]), "not a readable .safetensors"),
    "dtype-unknown.safetensors": (edit_first_tensor(dtype="F99"), "not a readable .safetensors"),
    "header-1tb.safetensors": (declared_header_length(10 ** 12), "not a readable .safetensors"),
    "header-2e63.safetensors": (declared_header_length(2 ** 63), "not a readable .safetensors"),
    "header-past-end.safetensors": (declared_header_length(10 ** 6), "not a readable .safetensors"),
    # pickles that would run code
    "system-call.pth": (pickled(gpen_with(SystemCall)), "was refused"),
    "exec-call.pth": (pickled(gpen_with(ExecCall)), "was refused"),
    "system-call-legacy.pth": (pickled(gpen_with(SystemCall), legacy=True), "was refused"),
    "system-call-in-container.pth": (pickled(lambda m: {"params_ema": {"w": SystemCall(m)}}), "was refused"),
    "system-call-raw-pickle.pth": (raw_pickle, "was refused"),
    # valid files of other models
    "gfpgan.pth": (state_dict_of(gfpgan, "params_ema"), "is a GFPGAN face restorer"),
    "codeformer.pth": (codeformer_keys, "is a CodeFormer face restorer"),
    "restoreformer.pth": (state_dict_of(restoreformer), "is a RestoreFormer face restorer"),
    "esrgan-x4.pth": (state_dict_of(esrgan), "is an ESRGAN-family upscaler"),
    "swinir-x2.pth": (state_dict_of(swinir, "params"), "is a SwinIR upscaler"),
    "retinaface.pth": (state_dict_of(retinaface), "is a RetinaFace face detector"),
    "parsenet.pth": (state_dict_of(parsenet), "is a ParseNet face parser"),
    "no-weights.pth": (pickled(lambda m: {"epoch": 3, "lr": 0.1}), "holds no weights"),
    "scrfd-detector.onnx": (scrfd_onnx, "not a GPEN ONNX model"),
    # ONNX files with the wrong input or output
    "input-named-x.onnx": (onnx_identity([("x", [1, 3, 64, 64])]), "not a GPEN ONNX model.*'x'"),
    "input-not-square.onnx": (onnx_identity([("input", [1, 3, 64, 32])]), "not a GPEN ONNX model"),
    "input-4-channels.onnx": (onnx_identity([("input", [1, 4, 64, 64])]), "not a GPEN ONNX model"),
    "two-inputs.onnx": (onnx_identity([("input", [1, 3, 64, 64]), ("noise", [1, 3, 64, 64])]),
                        "not a GPEN ONNX model"),
    "upscaler-x4.onnx": (onnx_identity([("input", [1, 3, 64, 64])], [1, 3, 256, 256]),
                         r"not a GPEN ONNX model.*\(1, 3, 256, 256\)"),
    # GPENs that parse but cannot be built (these raised ZeroDivisionError and AttributeError)
    "empty-tensor.pth": (pickled(lambda m: malformed.with_empty_tensor()),
                         r"'generator\.style\.1\.weight' has shape \(0,\), which no GPEN tensor has"),
    "integer-keys.pth": (pickled(lambda m: malformed.with_integer_keys()), "tensors are named by int keys"),
    "nan-weights.pth": (pickled(lambda m: malformed.with_nan_weight()), "has NaN or infinite weights"),
    "nan-weights.onnx": (malformed.nan_onnx, "has NaN or infinite weights"),  # described as good before
    "input-65536.onnx": (onnx_identity([("input", [1, 3, 65536, 65536])]), "S one of"),
}


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bad_models")
    made: dict[str, Path] = {}

    def get(name: str) -> Path:
        if name not in made:
            builder, _ = BAD_FILES[name]
            made[name] = folder / name
            made[name].write_bytes(builder(folder))
        return made[name]

    get.folder = folder
    return get


def marker_in(folder: Path) -> Path:
    return folder / MARKER_NAME


# --------------------------------------------------------------------------- the Python API


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_api_refuses_with_one_sentence_naming_the_file(bad_files, name):
    path = bad_files(name)
    started = time.monotonic()
    with pytest.raises(ModelLoadError) as info:
        gpen_arch.load_model(path)
    message = str(info.value)
    assert name in message, message
    assert re.search(BAD_FILES[name][1], message), message
    assert "\n" not in message and len(message) < 500, message
    assert "Weights only load failed" not in message  # torch's own blurb says nothing to a user
    assert time.monotonic() - started < 10
    assert not marker_in(bad_files.folder).exists(), f"{name} ran code while being loaded"


MALFORMED = ["empty-tensor.pth", "integer-keys.pth", "nan-weights.pth", "nan-weights.onnx", "input-65536.onnx"]


@pytest.mark.parametrize("name", MALFORMED)
def test_describing_a_malformed_gpen_says_what_loading_it_says(bad_files, name):
    """`gpen info`, the editor's model info and the loader: one check, one sentence."""
    with pytest.raises(ModelLoadError) as loading:
        gpen_arch.load_model(bad_files(name))
    with pytest.raises(ModelLoadError) as describing:
        gpen_arch.describe(bad_files(name))
    assert str(describing.value) == str(loading.value)


FIXTURE_KEYS = list(malformed.fixture_state_dict())
damage = st.tuples(st.integers(0, len(FIXTURE_KEYS) - 1), st.sampled_from(["shape", "name", "drop", "dtype"]),
                   st.one_of(st.lists(st.integers(0, 3), max_size=4).map(tuple), st.just((10 ** 6, 0))),
                   st.sampled_from([torch.float32, torch.float16, torch.bfloat16, torch.float64, torch.int64,
                                    torch.bool, torch.complex64]),
                   st.sampled_from([5, None, (1, 2), 1.5, b"x", "extra.weight", "ecd9.0.weight"]))


@pytest.mark.filterwarnings("ignore:Casting complex values")  # the damage itself, made below
@settings(max_examples=120, deadline=None, database=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(changes=st.lists(damage, min_size=1, max_size=3))
def test_any_damaged_gpen_state_dict_loads_or_is_refused_in_one_sentence(changes):
    sd = malformed.fixture_state_dict()
    for index, kind, shape, dtype, name in changes:
        key = FIXTURE_KEYS[index]
        if key not in sd:
            continue
        if kind == "shape":
            sd[key] = torch.zeros(shape, dtype=dtype)
        elif kind == "name":
            sd[name] = sd.pop(key)
        elif kind == "drop":
            del sd[key]
        else:
            sd[key] = sd[key].to(dtype)
    try:
        model = gpen_arch.load_model(sd)
    except ModelLoadError as exc:
        assert "\n" not in str(exc) and len(str(exc)) < 600, str(exc)
    else:
        assert model.size == 64


def test_fp16_is_refused_for_weights_it_cannot_hold_before_anything_is_written(tmp_path):
    """fp16 stops at 65504: the weight would become infinity and every face NaN. Loading in fp16
    says so, and `convert --fp16` refuses before writing a file the loader would then refuse."""
    path = tmp_path / "GPEN-large.pth"
    path.write_bytes(malformed.saved(malformed.with_large_weight()))
    assert gpen_arch.load_model(path).size == gpen_arch.load_model(path, dtype="bf16").size == 64
    with pytest.raises(ModelLoadError, match=re.escape(
            "Model file GPEN-large.pth has weights too large for fp16 (up to 1e+06 in generator.to_rgb1.bias); "
            "load it in fp32 or bf16.")):
        gpen_arch.load_model(path, dtype="fp16")
    done = support.run_cli("convert", path, "-o", tmp_path / "large-fp16.safetensors", "--fp16")
    support.assert_cli_error(done, "GPEN-large.pth has weights too large for fp16", "gpen convert without --fp16")
    assert [p.name for p in tmp_path.iterdir()] == ["GPEN-large.pth"]  # nothing written, nothing left over


@pytest.mark.parametrize("name", ["system-call.pth", "gfpgan.pth", "cut-half.pth", "header-1tb.safetensors"])
def test_describe_refuses_the_same_way(bad_files, name):
    with pytest.raises(ModelLoadError, match=re.escape(name)):
        gpen_arch.describe(bad_files(name))
    assert not marker_in(bad_files.folder).exists()


def test_misnamed_but_valid_files_load_by_their_content(tmp_path, s64_model):
    """The format is read from the bytes: a safetensors file called .pth and a PyTorch zip
    called .safetensors both load, giving the very same network."""
    (tmp_path / "really-safetensors.pth").write_bytes(safetensors_bytes())
    torch.save(tiny_state_dict(), tmp_path / "really-pytorch.safetensors")
    x = torch.rand(1, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        expected = s64_model(x)
        for name in ("really-safetensors.pth", "really-pytorch.safetensors"):
            model = gpen_arch.load_model(tmp_path / name)
            assert model.size == 64
            torch.testing.assert_close(model(x), expected, rtol=0, atol=0)


def test_folder_and_fifo_named_like_models_are_not_read(tmp_path):
    (tmp_path / "folder.pth").mkdir()
    os.mkfifo(tmp_path / "pipe.pth")  # reading it would block forever
    for name in ("folder.pth", "pipe.pth"):
        with pytest.raises(ModelLoadError, match=rf"{re.escape(name)} is not a regular file"):
            gpen_arch.load_model(tmp_path / name)


def test_an_onnx_that_changes_the_shape_is_caught_when_run(bad_files):
    """Outputs whose shape the file leaves open are checked on the call: a real session of
    an upscaler behind the GPEN call must not hand back a 256 px "face"."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(bad_files("upscaler-x4.onnx")), providers=["CPUExecutionProvider"])
    model = gpen_arch.OnnxGPEN(session=session, size=64, config=None, input_dtype=np.float32, fixed_batch=1,
                               source=str(bad_files("upscaler-x4.onnx")))
    with pytest.raises(ValueError, match=r"upscaler-x4\.onnx is not a GPEN ONNX model.*\(1, 3, 256, 256\)"):
        model(torch.zeros(1, 3, 64, 64))


# --------------------------------------------------------------------------- the command line

CLI_CASES = {
    # name: (subcommand, expected words)
    "empty.pth": ("info", "empty (0 bytes)"),
    "cut-half.pth": ("info", "truncated or corrupt"),
    "system-call.pth": ("restore", "was refused"),
    "gfpgan.pth": ("restore", "GFPGAN"),
    "lfs-pointer.pth": ("info", "Git LFS pointer"),
    "header-2e63.safetensors": ("info", "not a readable .safetensors"),
    "upscaler-x4.onnx": ("restore", "not a GPEN ONNX model"),
    "empty-tensor.pth": ("info", "has shape (0,), which no GPEN tensor has"),
    "integer-keys.pth": ("info", "tensors are named by int keys"),
    "nan-weights.onnx": ("info", "has NaN or infinite weights"),
}


@pytest.fixture(scope="module")
def cli_results(bad_files, tmp_path_factory):
    """Every CLI case run once, two at a time (each is a fresh interpreter importing torch)."""
    folder = tmp_path_factory.mktemp("cli_models")
    photo = folder / "photo.png"
    import cv2

    cv2.imwrite(str(photo), cv2.cvtColor(support.astronaut()[::4, ::4].copy(), cv2.COLOR_RGB2BGR))
    fifo = folder / "pipe.pth"
    os.mkfifo(fifo)

    def run(name: str):
        if name == "pipe.pth":
            return support.run_cli("info", fifo, timeout=60)
        command, _ = CLI_CASES[name]
        model = bad_files(name)
        if command == "info":
            return support.run_cli("info", model, timeout=60)
        return support.run_cli("restore", photo, "--model", model, "-o", folder / f"out-{name}.png", timeout=60)

    names = [*CLI_CASES, "pipe.pth"]
    for name in CLI_CASES:
        bad_files(name)  # built here, in this process, before the runs start
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = dict(zip(names, pool.map(run, names)))
    results["_folder"] = folder
    return results


@pytest.mark.parametrize("name", sorted(CLI_CASES))
def test_cli_prints_one_line_and_exits_non_zero(cli_results, bad_files, name):
    support.assert_cli_error(cli_results[name], name, CLI_CASES[name][1])
    assert not marker_in(bad_files.folder).exists()
    assert not list(cli_results["_folder"].glob("out-*"))  # nothing was written


def test_cli_on_a_fifo_returns_at_once(cli_results):
    support.assert_cli_error(cli_results["pipe.pth"], "pipe.pth", "not a regular file")


# --------------------------------------------------------------------------- the nodes in ComfyUI

NODE_CASES = {"cut-half.pth": "truncated or corrupt", "system-call.pth": "was refused",
              "gfpgan.pth": "is a GFPGAN face restorer", "lfs-pointer.safetensors": "Git LFS pointer",
              "offset-1tb.safetensors": "not a readable .safetensors", "upscaler-x4.onnx": "not a GPEN ONNX model",
              "empty-tensor.pth": "has shape (0,), which no GPEN tensor has",
              "integer-keys.pth": "tensors are named by int keys", "nan-weights.onnx": "has NaN or infinite weights"}


@pytest.fixture(scope="module")
def comfy_input(comfy):
    harness.save_png(support.astronaut()[::4, ::4].copy(), comfy.base / "input" / "robust-astronaut.png")
    return "robust-astronaut.png"


def one_node_graph(model_name: str, image: str) -> dict:
    return {"1": {"class_type": "LoadImage", "inputs": {"image": image}},
            "2": harness.gpen_one_node(model_name, mask_mode="box", device="cpu", precision="fp32"),
            "3": {"class_type": "PreviewImage", "inputs": {"images": ["2", 0]}}}


def chain_graph(model_name: str, image: str) -> dict:
    return {"1": {"class_type": "LoadImage", "inputs": {"image": image}},
            **harness.gpen_chain(model_name, mask_mode="box", device="cpu", precision="fp32"),
            "8": {"class_type": "PreviewImage", "inputs": {"images": ["7", 0]}}}


def assert_node_error(result: dict, node_type: str, *needles: str) -> str:
    assert result["status"] == "error", result
    error = result["error"]
    assert error["node_type"] == node_type
    message = error["exception_message"].strip()
    assert "\n" not in message, message
    for needle in needles:
        assert needle in message, message
    return message


def assert_server_still_works(comfy, image: str) -> None:
    result = comfy.run(one_node_graph("GPEN-robust-64.pth", image))
    assert result["status"] == "success", result["error"]
    assert len(result["outputs"]["3"]["images"]) == 1


@pytest.mark.parametrize("name", sorted(NODE_CASES))
def test_node_error_is_our_sentence_and_the_next_prompt_runs(comfy, comfy_input, bad_files, name):
    shutil.copyfile(bad_files(name), comfy.base / "models" / "facerestore" / name)
    result = comfy.run(chain_graph(name, comfy_input))
    assert_node_error(result, "GPENLoadModel", name, NODE_CASES[name])
    assert result["error"]["exception_type"].endswith("ModelLoadError")
    assert not marker_in(bad_files.folder).exists()
    assert_server_still_works(comfy, comfy_input)


BAD_NAMES = ["../GPEN-outside.pth", "../../models/GPEN-outside.pth", "facerestore/../../GPEN-outside.pth",
             "..\\GPEN-outside.pth", "/etc/passwd", "ABSOLUTE"]


@pytest.mark.parametrize("bad_name", BAD_NAMES)
def test_model_names_that_leave_the_model_folders_are_refused(comfy, comfy_input, bad_name):
    """Neither the file outside nor a same-named file inside the folder is loaded."""
    models = comfy.base / "models"
    harness.put_model(models, "GPEN-outside.pth", S64_MODEL_FILE)  # next to facerestore/, never to be read
    harness.put_model(models / "facerestore", "GPEN-outside.pth", S64_MODEL_FILE)  # what '..' would collapse to
    if bad_name == "ABSOLUTE":
        bad_name = str(models / "GPEN-outside.pth")
    for node_id, node_type, graph in (("2", "GPENFaceRestore", one_node_graph(bad_name, comfy_input)),
                                      ("4", "GPENLoadModel", chain_graph(bad_name, comfy_input))):
        result = comfy.run(graph)
        assert result["status"] in ("invalid", "success"), result  # other outputs (the face preview) may run
        assert set(result["node_errors"]) == {node_id}, result["node_errors"]
        details = " ".join(e["details"] for e in result["node_errors"][node_id]["errors"])
        assert "inside the model folders" in details and bad_name in details, details
        loader = comfy.nodes.NODE_CLASS_MAPPINGS[node_type]
        assert "inside the model folders" in loader.VALIDATE_INPUTS(bad_name)
    with pytest.raises(ValueError, match="inside the model folders"):
        comfy.nodes.NODE_CLASS_MAPPINGS["GPENLoadModel"]().load(bad_name, "cpu", "fp32")
    assert_server_still_works(comfy, comfy_input)


def saved_bytes(obj) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def replace_file(path: Path, data: bytes, keep_stat: os.stat_result | None = None) -> None:
    """Replace `path` like a download tool would (new file renamed over it); with `keep_stat`,
    the old size and mtime are put back, as `cp -p`/unzip of an equal-sized file would."""
    scratch = path.with_name(path.name + ".new")
    scratch.write_bytes(data)
    os.replace(scratch, path)
    if keep_stat is not None:
        assert path.stat().st_size == keep_stat.st_size
        os.utime(path, ns=(keep_stat.st_atime_ns, keep_stat.st_mtime_ns))


def test_model_replaced_by_a_broken_file_is_not_served_from_the_cache(comfy, comfy_input):
    folder = comfy.base / "models" / "facerestore"
    path = harness.put_model(folder, "GPEN-swapped.pth", S64_MODEL_FILE)
    assert comfy.run(one_node_graph("GPEN-swapped.pth", comfy_input))["status"] == "success"
    good = path.read_bytes()
    replace_file(path, good[: len(good) // 2])
    assert_node_error(comfy.run(one_node_graph("GPEN-swapped.pth", comfy_input)), "GPENFaceRestore",
                      "GPEN-swapped.pth", "truncated or corrupt")
    replace_file(path, good)  # fixed again: loads, the error was not cached either
    assert comfy.run(one_node_graph("GPEN-swapped.pth", comfy_input))["status"] == "success"


def test_model_replaced_by_an_equal_sized_file_with_the_old_mtime_is_reloaded(comfy):
    """Same size, same mtime, other weights: what `cp -p` or an archive tool can produce."""
    folder = comfy.base / "models" / "facerestore"
    original = {k: v.clone() for k, v in tiny_state_dict().items()}
    changed = {k: v.clone() for k, v in original.items()}
    changed["generator.to_rgb1.bias"] += 0.5
    path = folder / "GPEN-same-stamp.pth"
    path.write_bytes(saved_bytes(original))
    data = saved_bytes(changed)

    loader = comfy.nodes.NODE_CLASS_MAPPINGS["GPENLoadModel"]()
    first = loader.load("GPEN-same-stamp.pth", "cpu", "fp32")["result"][0]
    stamp = loader.IS_CHANGED("GPEN-same-stamp.pth")
    replace_file(path, data, keep_stat=os.stat(path))
    assert loader.IS_CHANGED("GPEN-same-stamp.pth") != stamp  # ComfyUI re-runs the loader
    second = loader.load("GPEN-same-stamp.pth", "cpu", "fp32")["result"][0]
    assert second is not first
    torch.testing.assert_close(second.model.network.state_dict()["generator.to_rgb1.bias"], changed["generator.to_rgb1.bias"])
