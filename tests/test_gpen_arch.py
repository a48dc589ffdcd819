"""The GPEN core against the official code's fixtures, and its loader against every kind of file."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

import gpen_arch
from gpen_arch import GPEN, GPENConfig, ModelLoadError, infer_config, load_model
from gpen_arch.loader import expected_layout

from fixture_files import FIXTURES  # RELEASED below lists it when the module is imported
MODELS = ["gpen_s64_cm1_n0125", "gpen_s256_cm1_n00625", "gpen_s64_cm2_n0125_noconcat"]
RELEASED = sorted(p.stem[len("keys_"):] for p in FIXTURES.glob("keys_*.json"))


def fixture_io(name):
    return np.load(FIXTURES / f"{name}_io.npz")


def fixture_config(name) -> dict:
    return json.loads((FIXTURES / f"{name}.json").read_text())["config"]


def run(model, x: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
        return model(torch.from_numpy(x)).float().numpy()


@pytest.fixture(scope="module", params=MODELS)
def official(request):
    name = request.param
    return name, load_model(FIXTURES / f"{name}.pth").network, fixture_io(name)


# --- the network equals the official one -----------------------------------------------------


@pytest.mark.parametrize("use_workspace", [True, False], ids=["workspace", "ordinary-layers"])
def test_output_matches_official_fp32(official, use_workspace, monkeypatch):
    name, model, io = official
    monkeypatch.setattr(model, "use_workspace", use_workspace)
    out = run(model, io["input"])
    assert out.shape == io["output"].shape
    np.testing.assert_allclose(out, io["output"], atol=1e-4, rtol=0)


def test_output_matches_official_fp64(official):
    name, _, io = official
    model = GPEN(infer_config(torch.load(FIXTURES / f"{name}.pth", weights_only=True))).double()
    model.load_state_dict(torch.load(FIXTURES / f"{name}.pth", weights_only=True))
    with torch.inference_mode():
        out = model(torch.from_numpy(io["input"]).double()).numpy()
    np.testing.assert_allclose(out, io["output_fp64"], atol=1e-9, rtol=0)


def test_intermediates_match_official(official, monkeypatch):
    """Every recorded layer output, so a failure names the layer that differs."""
    name, model, io = official
    monkeypatch.setattr(model, "use_workspace", False)  # hooks see the ordinary layers only
    recorded = {}

    def keep(key):
        return lambda _m, _i, out: recorded.__setitem__(key, out.detach().float().numpy().copy())

    hooks = []
    cfg = model.config
    for i, block in enumerate(model.encoder_names):
        hooks.append(getattr(model, block).register_forward_hook(keep(f"feat_ecd{i}")))
    hooks.append(model.final_linear.register_forward_hook(keep("feat_final_linear")))
    hooks.append(model.generator.style.register_forward_hook(keep("feat_mapping_w")))
    hooks.append(model.generator.conv1.register_forward_hook(keep("feat_gen_conv1")))
    hooks.append(model.generator.to_rgb1.register_forward_hook(keep("feat_rgb_4")))
    for i, conv in enumerate(model.generator.convs):
        hooks.append(conv.register_forward_hook(keep(f"feat_gen_convs_{i}_res{2 ** (i // 2 + 3)}")))
    for j, to_rgb in enumerate(model.generator.to_rgbs):
        hooks.append(to_rgb.register_forward_hook(keep(f"feat_rgb_{2 ** (j + 3)}")))
    run(model, io["input"])
    for h in hooks:
        h.remove()

    compared = 0
    for key in io.files:
        if not key.startswith("feat_"):
            continue
        assert key in recorded, f"no layer of ours produced {key}"
        ref = io[key]
        scale = max(1.0, float(np.abs(ref).max()))
        np.testing.assert_allclose(recorded[key], ref, atol=1e-4 * scale, rtol=0, err_msg=key)
        compared += 1
    assert compared >= 10
    n_latent = 2 * cfg.log_size - 2  # the official code repeats w once per styled layer and to_rgb
    latents = np.repeat(recorded["feat_mapping_w"][:, None], n_latent, axis=1)
    np.testing.assert_allclose(latents, io["latents"], atol=1e-4, rtol=0)


def test_batch_gives_each_sample_its_own_result(official):
    name, model, io = official
    x = np.concatenate([io["input"], -io["input"], io["input"]])
    out = run(model, x)
    np.testing.assert_allclose(out[0], io["output"][0], atol=1e-4, rtol=0)
    np.testing.assert_allclose(out[2], io["output"][0], atol=1e-4, rtol=0)
    assert np.abs(out[1] - out[0]).max() > 1e-2


# --- the CPU forward in a reused workspace --------------------------------------------------------


def _random_gpen(cfg: GPENConfig, seed: int = 0) -> GPEN:
    """Random weights with the paths the official init leaves at zero made active."""
    torch.manual_seed(seed)
    model = GPEN(cfg).eval().requires_grad_(False)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("noise.weight") or name.endswith("bias"):
                p.normal_(0, 0.3)
    return model


@pytest.mark.parametrize("cfg", [GPENConfig(64, narrow=0.125), GPENConfig(128, channel_multiplier=1, narrow=0.25),
                                 GPENConfig(64, narrow=0.041)],
                         ids=["64px", "128px", "20-channels"])  # 20: views that need alignment padding
def test_workspace_forward_equals_the_ordinary_layers(cfg):
    assert gpen_arch.cpu_forward.supported(), "oneDNN's in-place convolution is missing from this torch"
    model = _random_gpen(cfg)
    x = torch.rand(2, 3, cfg.size, cfg.size) * 2 - 1
    with torch.inference_mode():
        fast = model(x)
        assert "_workspace" in model.__dict__
        model.use_workspace = False
        ordinary = model(x)
    assert fast.abs().max() > 0.1
    torch.testing.assert_close(fast, ordinary, atol=2e-5, rtol=0)


def test_workspace_is_reused_and_never_leaks_between_faces():
    model = _random_gpen(GPENConfig(64, narrow=0.125))
    a, b = (torch.rand(1, 3, 64, 64) * 2 - 1 for _ in range(2))
    with torch.inference_mode():
        first = model(a)
        workspace = model.__dict__["_workspace"].workspace
        model(b)
        again = model(a)
        assert model.__dict__["_workspace"].workspace.data_ptr() == workspace.data_ptr()
        workspace.fill_(float("nan"))  # the returned images are not views of it
    assert torch.equal(first, again)
    assert torch.isfinite(first).all()


def test_a_loaded_model_runs_its_workspace_forward_whatever_the_callers_grad_mode():
    model = gpen_arch.GPENModel.of(_random_gpen(GPENConfig(64, narrow=0.125)))
    x = torch.rand(1, 3, 64, 64) * 2 - 1
    assert torch.is_grad_enabled()
    out = model(x)
    assert "_workspace" in model.network.__dict__ and not out.requires_grad


def test_workspace_takes_inputs_of_any_float_dtype():
    model = _random_gpen(GPENConfig(64, narrow=0.125))
    x = torch.rand(1, 3, 64, 64, dtype=torch.float64) * 2 - 1
    with torch.inference_mode():
        got = model(x)  # converted to the model's dtype, as the ordinary layers do
        assert model.use_workspace and "_workspace" in model.__dict__
        model.use_workspace = False
        want = model(x)
    torch.testing.assert_close(got, want, atol=2e-5, rtol=0)


def test_workspace_works_under_no_grad_and_inference_mode_alike():
    model = _random_gpen(GPENConfig(64, narrow=0.125))
    x = torch.rand(1, 3, 64, 64) * 2 - 1
    with torch.inference_mode():
        in_inference = model(x)
    with torch.no_grad():
        in_no_grad = model(x)
    assert torch.equal(in_inference, in_no_grad)


def test_concurrent_calls_each_get_their_own_result():
    import threading

    model = _random_gpen(GPENConfig(64, narrow=0.125))
    inputs = [torch.rand(1, 3, 64, 64) * 2 - 1 for _ in range(4)]
    with torch.inference_mode():
        expected = [model(x) for x in inputs]
    results = {}

    def worker(i):
        with torch.inference_mode():
            for _ in range(3):
                results[i] = model(inputs[i])

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i, want in enumerate(expected):
        assert torch.equal(results[i], want)


def test_workspace_is_left_out_with_grad_mode_and_freed_on_a_move():
    model = _random_gpen(GPENConfig(64, narrow=0.125))
    x = torch.rand(1, 3, 64, 64) * 2 - 1
    with torch.enable_grad():
        model(x)  # autograd on: the ordinary layers
    assert "_workspace" not in model.__dict__
    with torch.no_grad():
        model(x)
    assert "_workspace" in model.__dict__
    model.double()
    assert "_workspace" not in model.__dict__
    big = GPEN(GPENConfig(64, narrow=0.125)).eval()
    big.KEEP_WORKSPACE_BYTES = 0  # a workspace over the limit is freed after each call
    with torch.no_grad():
        big(x)
    assert "_workspace" not in big.__dict__


def _demodulating(network):
    return [m for m in network.modules() if isinstance(m, gpen_arch.layers.ModulatedConv2d) and m.demodulate]


def test_a_model_loaded_for_the_cpu_has_its_first_call_prepared(small):
    sd, x, ref = small
    model = load_model(sd).network
    runner = model.__dict__["_workspace"]
    energies = [m.__dict__["_energy"][1] for m in _demodulating(model)]
    out = run(model, x)
    np.testing.assert_allclose(out, ref, atol=1e-4, rtol=0)
    # The first call found both ready: the same workspace, and no energy computed again.
    assert model.__dict__["_workspace"] is runner
    assert all(m.__dict__["_energy"][1] is e for m, e in zip(_demodulating(model), energies))
    lazy = load_model(sd, prepare=False).network  # loaded to be moved elsewhere: nothing built
    assert "_workspace" not in lazy.__dict__ and not any("_energy" in m.__dict__ for m in _demodulating(lazy))
    assert np.array_equal(run(lazy, x), out)


def test_only_a_network_that_runs_in_a_workspace_is_prepared(small):
    sd, x, ref = small
    assert "_workspace" not in load_model(sd, dtype="bf16").network.__dict__
    noconcat = FIXTURES / "gpen_s64_cm2_n0125_noconcat.pth"
    assert "_workspace" not in load_model(noconcat).network.__dict__
    big = load_model(sd, prepare=False).network
    big.KEEP_WORKSPACE_BYTES = 0  # freed after each call: not worth holding from the load on
    big.prepare()
    assert "_workspace" not in big.__dict__


def test_a_move_to_where_the_model_already_is_keeps_its_workspace(small):
    # ComfyUI moves a CPU model to the CPU before each run.
    model = load_model(small[0]).network
    runner = model.__dict__["_workspace"]
    model.to("cpu").float()
    assert model.__dict__["_workspace"] is runner
    model.to(torch.float64)
    assert "_workspace" not in model.__dict__


def test_a_failing_in_place_kernel_falls_back_to_the_ordinary_layers(monkeypatch):
    model = _random_gpen(GPENConfig(64, narrow=0.125))
    x = torch.rand(1, 3, 64, 64) * 2 - 1
    with torch.inference_mode():
        model.use_workspace = False
        want = model(x)
        model.use_workspace = True

        def unsupported(*args, **kwargs):
            raise RuntimeError("could not create a primitive")

        monkeypatch.setattr(gpen_arch.cpu_forward, "conv_add", unsupported)
        with pytest.warns(UserWarning, match="ordinary layers"):
            got = model(x)
    assert torch.equal(got, want)
    assert model.use_workspace is False and "_workspace" not in model.__dict__


def test_config_comes_from_tensors(official):
    name, model, _ = official
    assert model.config.to_dict() == fixture_config(name)
    assert model.size == fixture_config(name)["size"]


# --- every released checkpoint layout ----------------------------------------------------------


@pytest.mark.parametrize("release", RELEASED)
def test_released_layout_loads_strict(release):
    spec = json.loads((FIXTURES / f"keys_{release}.json").read_text())
    wanted = {k: spec["config"][k] for k in ("size", "style_dim", "n_mlp", "channel_multiplier", "narrow", "isconcat")}
    layout = [(e["key"], tuple(e["shape"])) for e in spec["keys"]]
    meta = {k: torch.empty(shape, device="meta") for k, shape in layout}
    cfg = infer_config(meta)
    assert cfg.to_dict() == wanted
    assert cfg == gpen_arch.RELEASED[release]
    assert list(expected_layout(cfg).items()) == layout
    # A real (zero) state_dict of that layout goes through the whole loader.
    model = load_model({k: torch.zeros(shape) for k, shape in layout})
    assert model.config == cfg
    assert [(k, tuple(v.shape)) for k, v in model.network.state_dict().items()] == layout


# --- file formats and containers ---------------------------------------------------------------


@pytest.fixture(scope="module")
def small():
    sd = torch.load(FIXTURES / "gpen_s64_cm1_n0125.pth", weights_only=True)
    io = fixture_io("gpen_s64_cm1_n0125")
    return sd, io["input"], io["output"]


def _save_variants(sd, folder: Path):
    import argparse

    from safetensors.torch import save_file

    files = {}
    files["plain.pth"] = sd
    files["g_ema.pt"] = {"g": {k: v + 1 for k, v in sd.items()}, "g_ema": sd,
                         "args": argparse.Namespace(size=64, channel_multiplier=1), "iter": 10}
    files["params_ema.bin"] = {"params_ema": sd}
    files["state_dict.pth"] = {"state_dict": {f"module.{k}": v for k, v in sd.items()}}
    files["pickle_named.safetensors"] = sd  # torch's own reader would hand this name to safetensors
    for name, obj in files.items():
        torch.save(obj, folder / name)
    torch.save(sd, folder / "legacy.pth", _use_new_zipfile_serialization=False)  # cannot be mapped
    save_file({k: v.contiguous() for k, v in sd.items()}, str(folder / "model.safetensors"))
    save_file({k: v.half().contiguous() for k, v in sd.items()}, str(folder / "half.safetensors"))
    return sorted(p.name for p in folder.iterdir())


def test_every_container_and_format_gives_the_same_output(small, tmp_path):
    sd, x, ref = small
    names = _save_variants(sd, tmp_path)
    for name in names:
        model = load_model(tmp_path / name)
        assert model.dtype == torch.float32, name
        tol = 2e-2 if name.startswith("half") else 1e-4
        np.testing.assert_allclose(run(model, x), ref, atol=tol, rtol=0, err_msg=name)


@pytest.mark.parametrize("name", ["plain.pth", "legacy.pth", "model.safetensors"])
def test_a_loaded_model_keeps_its_weights_when_its_file_is_rewritten(small, tmp_path, name):
    # Weights left in a mapping of the file would change with it, or end the process (SIGBUS) when it shrinks.
    sd, x, ref = small
    _save_variants(sd, tmp_path)
    path = tmp_path / name
    model = load_model(path)
    with open(path, "r+b") as fh:
        fh.write(b"\0" * path.stat().st_size)
    np.testing.assert_allclose(run(model, x), ref, atol=1e-4, rtol=0)


def test_a_file_system_that_cannot_map_files_still_loads(small, tmp_path, monkeypatch):
    sd, x, ref = small
    torch.save(sd, tmp_path / "model.pth")

    def cannot_map(*args, **kwargs):
        raise RuntimeError("unable to mmap 5242880 bytes from file <model.pth>: No such device (19)")

    monkeypatch.setattr(torch.UntypedStorage, "from_file", cannot_map)
    np.testing.assert_allclose(run(load_model(tmp_path / "model.pth"), x), ref, atol=1e-4, rtol=0)


def test_every_model_suffix_loads_and_others_are_refused_naming_them(small, tmp_path):
    from safetensors.torch import save_file

    sd, x, ref = small
    assert set(gpen_arch.MODEL_SUFFIXES) == {".pth", ".pt", ".bin", ".ckpt", ".safetensors", ".sft", ".onnx"}
    for suffix in gpen_arch.MODEL_SUFFIXES:
        path = tmp_path / f"gpen{suffix}"
        if suffix == ".onnx":
            gpen_arch.export_onnx(load_model(sd), path)
        elif suffix in (".safetensors", ".sft"):
            save_file({k: v.contiguous() for k, v in sd.items()}, str(path))
        else:
            torch.save(sd, path)
        np.testing.assert_allclose(run(load_model(path), x), ref, atol=1e-4, rtol=0, err_msg=suffix)
    torch.save(sd, tmp_path / "gpen.pkl")
    with pytest.raises(ModelLoadError, match=r"unsupported file type '\.pkl'; use one of \.pth, .*\.sft, \.onnx"):
        load_model(tmp_path / "gpen.pkl")


def test_converter_round_trip_and_fp16_halves_the_file(small, tmp_path):
    sd, x, ref = small
    model = load_model(sd)
    full = gpen_arch.save_safetensors(model, tmp_path / "full.safetensors")
    half = gpen_arch.save_safetensors(model, tmp_path / "half.safetensors", half=True)
    np.testing.assert_allclose(run(load_model(full), x), ref, atol=1e-4, rtol=0)
    np.testing.assert_allclose(run(load_model(half), x), ref, atol=2e-2, rtol=0)
    ratio = half.stat().st_size / full.stat().st_size
    assert 0.45 < ratio < 0.55
    assert gpen_arch.describe(half).dtype == "fp16"


def test_a_loaded_model_tells_what_it_is_and_what_it_needs(small, tmp_path):
    from gpen_arch import cpu_forward

    sd, x, ref = small
    torch.save(sd, tmp_path / "GPEN-Colorization-1024.pth")
    model = load_model(tmp_path / "GPEN-Colorization-1024.pth")
    assert model.task == "colorize" and model.source == str(tmp_path / "GPEN-Colorization-1024.pth")
    assert load_model(tmp_path / "GPEN-Colorization-1024.pth", task="restore").task == "restore"
    assert load_model(sd).task == "restore" and load_model(sd).source is None
    assert model.backend == "torch" and model.device.type == "cpu" and model.precision == "fp32"
    assert model.precisions == ("fp32", "bf16", "fp16")
    # On the CPU a batch runs one face at a time in the forward's workspace: its plan is the need.
    workspace = cpu_forward.plan_for(model.config).numel * 4
    assert model.one_face_per_call and model.working_bytes(1) == model.working_bytes(8) == workspace
    assert load_model(sd, dtype="bf16").working_bytes(1) == workspace // 2
    np.testing.assert_allclose(run(model, x), ref, atol=1e-4, rtol=0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        model.size = 512


def test_file_name_never_decides_the_config(small, tmp_path):
    sd, x, ref = small
    torch.save(sd, tmp_path / "GPEN-BFR-512.pth")
    model = load_model(tmp_path / "GPEN-BFR-512.pth")
    assert model.size == 64


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_reduced_precision_stays_close(small, precision):
    sd, x, ref = small
    model = load_model(sd, dtype=precision)
    assert model.dtype == gpen_arch.DTYPES[precision] and model.precision == precision
    out = run(model, x)
    assert np.isfinite(out).all()
    # Measured: fp16 4e-3, bf16 2e-2 on this fixture (output range about 4.5).
    assert np.abs(out - ref).max() < (0.02 if precision == "fp16" else 0.1)


def test_onnx_export_runs_in_onnxruntime_with_any_batch(small, tmp_path):
    sd, x, ref = small
    path = gpen_arch.export_onnx(load_model(sd), tmp_path / "gpen.onnx")
    onnx_model = load_model(path, device="cpu")
    assert onnx_model.size == 64
    assert onnx_model.config == load_model(sd).config
    assert onnx_model.backend == "onnx" and onnx_model.device.type == "cpu" and onnx_model.precisions == ("fp32",)
    assert "CPUExecutionProvider" in onnx_model.network.session.get_providers()
    out = onnx_model(torch.from_numpy(np.concatenate([x, x, x]))).numpy()
    assert out.shape == (3, 3, 64, 64)
    np.testing.assert_allclose(out, np.concatenate([ref] * 3), atol=1e-4, rtol=0)


def test_onnx_export_stores_each_kernel_once(small, tmp_path):
    # The demodulation's weight energy (out x in per layer, a ninth of a 3x3 kernel) is stored with the
    # kernels; a second copy of the kernels, traced for the energy, would be most of another model.
    sd, _, _ = small
    model = load_model(sd)
    path = gpen_arch.export_onnx(model, tmp_path / "gpen.onnx")
    weight_bytes = sum(p.numel() * 4 for p in model.network.parameters())
    assert path.stat().st_size < 1.15 * weight_bytes  # 1.07 here; 1.24 with the kernels twice


def test_onnx_providers_put_cuda_first_only_where_it_is_wanted_and_present():
    import onnxruntime as ort

    from gpen_arch.onnx_model import onnx_providers

    cuda = ["CUDAExecutionProvider"] if "CUDAExecutionProvider" in ort.get_available_providers() else []
    for device in (None, "cuda", "cuda:1", torch.device("cuda", 0)):
        assert onnx_providers(device) == cuda + ["CPUExecutionProvider"], device
    for device in ("cpu", torch.device("cpu"), "mps"):
        assert onnx_providers(device) == ["CPUExecutionProvider"], device


def test_onnx_with_a_foreign_input_is_refused(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    node = helper.make_node("Identity", ["x"], ["y"])
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 8, 8])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.save(model, tmp_path / "other.onnx")
    with pytest.raises(ModelLoadError, match=r"other\.onnx is not a GPEN ONNX model.*'x'"):
        load_model(tmp_path / "other.onnx")


# --- what is refused, and how --------------------------------------------------------------------


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


@pytest.mark.parametrize("legacy", [False, True])
def test_pickle_that_runs_code_is_refused_and_never_runs(tmp_path, legacy):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pth"
    torch.save({"generator.style.1.weight": torch.zeros(1), "hook": _Payload(marker)}, evil,
               _use_new_zipfile_serialization=not legacy)
    with pytest.raises(ModelLoadError, match=r"evil\.pth was refused"):
        load_model(evil)
    assert not marker.exists()


def _family(prefixes: list[str]) -> dict[str, torch.Tensor]:
    return {k: torch.zeros(2, 2) for k in prefixes}


FAMILIES = {
    "GFPGAN": ["conv_body_first.weight", "conv_body_down.0.conv1.weight", "stylegan_decoder.style_mlp.1.weight",
               "toRGB.0.weight", "final_linear.weight"],
    "CodeFormer": ["encoder.blocks.0.weight", "quantize.embedding.weight", "position_emb",
                   "ft_layers.0.self_attn.in_proj_weight", "idx_pred_layer.0.weight", "generator.blocks.0.weight"],
    "RestoreFormer": ["encoder.conv_in.weight", "quantize.embedding.weight", "decoder.conv_in.weight"],
    "ESRGAN": ["conv_first.weight", "body.0.rdb1.conv1.weight", "conv_body.weight", "conv_up1.weight",
               "conv_last.weight"],
}


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_other_restorers_are_named(family, tmp_path):
    torch.save({"params_ema": _family(FAMILIES[family])}, tmp_path / "model.pth")
    with pytest.raises(ModelLoadError, match=rf"model\.pth is an? {family}"):
        load_model(tmp_path / "model.pth")


@pytest.mark.parametrize("kind", ["RetinaFace", "ParseNet", "BiSeNet"])
def test_detectors_and_parsers_are_named(kind, tmp_path):
    if kind == "RetinaFace":
        from facexlib.detection.retinaface import RetinaFace

        net = RetinaFace(network_name="mobile0.25", half=False, device="cpu")
    elif kind == "ParseNet":
        from facexlib.parsing.parsenet import ParseNet

        net = ParseNet(in_size=512, out_size=512, parsing_ch=19)
    else:
        from facexlib.parsing.bisenet import BiSeNet

        net = BiSeNet(num_class=19)
    torch.save(net.state_dict(), tmp_path / "weights.pth")
    with pytest.raises(ModelLoadError, match=rf"weights\.pth is a {kind}"):
        load_model(tmp_path / "weights.pth")


def test_near_gpen_lists_the_keys_that_differ(small, tmp_path):
    sd, _, _ = small
    broken = dict(sd)
    del broken["generator.convs.3.noise.weight"]
    broken["generator.to_rgbs.1.bias"] = torch.zeros(1, 4, 1, 1)
    broken["extra.weight"] = torch.zeros(3)
    torch.save(broken, tmp_path / "almost.pth")
    with pytest.raises(ModelLoadError) as info:
        load_model(tmp_path / "almost.pth")
    message = str(info.value)
    assert "almost.pth" in message
    assert "missing: generator.convs.3.noise.weight" in message
    assert "unexpected: extra.weight" in message
    assert "generator.to_rgbs.1.bias (1, 4, 1, 1) (expected (1, 3, 1, 1))" in message


def test_nan_weights_are_refused(small):
    sd, _, _ = small
    bad = dict(sd)
    bad["generator.style.2.bias"] = torch.full_like(sd["generator.style.2.bias"], float("nan"))
    with pytest.raises(ModelLoadError, match="NaN"):
        load_model(bad)


def test_truncated_empty_and_random_files_name_the_file(small, tmp_path):
    sd, _, _ = small
    torch.save(sd, tmp_path / "good.pth")
    data = (tmp_path / "good.pth").read_bytes()
    cases = {"empty.pth": b"", "random.pth": np.random.default_rng(0).bytes(5000)}
    for cut in (10, 1000, len(data) // 2, len(data) - 10):
        cases[f"cut{cut}.pth"] = data[:cut]
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in sd.items()}, str(tmp_path / "st.safetensors"))
    st = (tmp_path / "st.safetensors").read_bytes()
    cases["cut.safetensors"] = st[: len(st) // 3]
    cases["header.safetensors"] = (10 ** 12).to_bytes(8, "little") + b"{}"
    for name, payload in cases.items():
        (tmp_path / name).write_bytes(payload)
        with pytest.raises(ModelLoadError, match=name.replace(".", r"\.")):
            load_model(tmp_path / name)


def test_missing_file_and_wrong_suffix(tmp_path):
    with pytest.raises(ModelLoadError, match="not found"):
        load_model(tmp_path / "nope.pth")
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(ModelLoadError, match="unsupported file type"):
        load_model(tmp_path / "notes.txt")


def test_wrong_input_shape_is_a_clear_error(small):
    model = load_model(small[0])
    with pytest.raises(ValueError, match=r"GPEN-64 expects a \(B, 3, 64, 64\)"):
        model(torch.zeros(1, 3, 32, 32))


def test_describe_reports_config_and_parameters():
    info = gpen_arch.describe(FIXTURES / "gpen_s256_cm1_n00625.pth")
    spec = json.loads((FIXTURES / "gpen_s256_cm1_n00625.json").read_text())
    assert info.config.to_dict() == spec["config"]
    assert info.parameters == spec["n_params"]
    assert info.dtype == "fp32" and info.format == "pytorch" and info.task == "restore"


def test_weights_changed_in_place_are_used_at_once(small):
    """The per-layer weight energy is cached; an in-place change must not leave it stale."""
    sd, x, ref = small
    model = load_model(sd).network
    run(model, x)
    with torch.no_grad():
        model.generator.convs[1].conv.weight.add_(torch.randn_like(model.generator.convs[1].conv.weight))
    fresh = load_model({k: v.clone() for k, v in model.state_dict().items()})
    np.testing.assert_allclose(run(model, x), run(fresh, x), atol=1e-6, rtol=0)
    assert np.abs(run(model, x) - ref).max() > 1e-3


def test_weights_made_under_inference_mode_work(small):
    """ComfyUI moves models inside inference_mode; such weights have no version counter."""
    sd, x, ref = small
    with torch.inference_mode():
        model = load_model({k: v.clone() for k, v in sd.items()})
        model.network.to(torch.float64).to(torch.float32)
        out = model(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(out, ref, atol=1e-4, rtol=0)


def test_loading_a_model_imports_no_compiler_or_symbolic_maths():
    # Building the network on the meta device with random init or tensor arithmetic pulls in sympy and
    # torch's compiler: about a second of every cold start.
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    code = ("import sys, torch, gpen_arch; before = set(sys.modules); "
            f"gpen_arch.load_model({str(FIXTURES / 'gpen_s256_cm1_n00625.pth')!r}); "
            "print(sorted(m for m in set(sys.modules) - before if m.split('.')[0] == 'sympy' "
            "or m.startswith(('torch._dynamo', 'torch._inductor'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root, check=True)
    assert out.stdout.strip() == "[]"


def test_a_plain_network_draws_the_official_random_init_and_the_same_seed_draws_it_again():
    def drawn(seed):
        torch.manual_seed(seed)
        return GPEN(GPENConfig(64, narrow=0.125)).state_dict()

    first = drawn(0)
    assert all(bool(torch.isfinite(v).all()) for v in first.values())
    assert 0.8 < float(first["generator.input.input"].std()) < 1.2
    assert all(torch.equal(v, drawn(0)[k]) for k, v in first.items())
