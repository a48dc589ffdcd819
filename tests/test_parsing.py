"""The face parsers' own forwards against facexlib's modules, which stay here as the reference."""
import shutil

import cv2
import numpy as np
import pytest
import torch

from gpen_arch import cpu_forward
from gpen_pipeline import align_faces
from gpen_pipeline.cut import as_tensor, cut_crops
from gpen_pipeline.face import crops_to_numpy
from gpen_pipeline.hardware import fast_bf16
from gpen_pipeline.parsenet import ParseNetForward, ParseNetWeights, parsenet_weights
from gpen_pipeline.parsing import PARSE_SIZE, SMALL_PARSE_SIZE, load_parser, parse_labels

facexlib_parsing = pytest.importorskip("facexlib.parsing")


def _with_running_statistics(net: torch.nn.Module, seed: int) -> torch.nn.Module:
    """BatchNorm as after training (the fresh init is the identity, which folding could get wrong unseen)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                n = m.num_features
                m.running_mean.copy_(torch.randn(n, generator=gen) * 0.2)
                m.running_var.copy_(torch.rand(n, generator=gen) + 0.5)
                m.weight.copy_(torch.rand(n, generator=gen) + 0.5)
                m.bias.copy_(torch.randn(n, generator=gen) * 0.2)
    return net.eval()


def _widths(weights: ParseNetWeights) -> dict:
    """facexlib's ParseNet arguments for these weights, to build the reference module."""
    blocks = [b.conv1.out_channels for b in weights.blocks]
    return {"base_ch": weights.first.out_channels, "ch_range": [min(blocks), max(blocks)],
            "res_depth": len(weights.body)}


def _reference_parsenet(state: dict) -> torch.nn.Module:
    net = facexlib_parsing.parsenet.ParseNet(in_size=512, out_size=512, parsing_ch=19,
                                             **_widths(parsenet_weights(state)))
    net.load_state_dict(state)
    return net.eval()


@pytest.fixture(scope="module")
def narrow_state(fixtures_dir):
    return torch.load(fixtures_dir / "parsenet_narrow.pth", weights_only=True)


@pytest.fixture(scope="module")
def released_width_state():
    torch.manual_seed(1)
    net = facexlib_parsing.parsenet.ParseNet(in_size=512, out_size=512, parsing_ch=19)  # 64, [32, 256]
    return _with_running_statistics(net, 1).state_dict()


def _assert_same_logits(want: torch.Tensor, got: torch.Tensor) -> None:
    assert got.shape == want.shape
    scale = want.abs().max().item()
    assert (got - want).abs().max().item() <= 1e-5 * max(scale, 1.0)


@pytest.mark.parametrize("in_cpu_kernels", [True, False], ids=["oneDNN in place", "ordinary convolution"])
@pytest.mark.parametrize("width, side", [("narrow", 512), ("released", 128)])
def test_parsenet_forward_gives_facexlibs_logits(narrow_state, released_width_state, monkeypatch, width, side,
                                                 in_cpu_kernels):
    if not in_cpu_kernels:  # the path every other device takes
        monkeypatch.setattr(cpu_forward, "supported", lambda: False)
    state = narrow_state if width == "narrow" else released_width_state
    x = torch.rand(1, 3, side, side, generator=torch.Generator().manual_seed(side)) * 2 - 1
    with torch.inference_mode():
        want = _reference_parsenet(state)(x)[0]
    forward = ParseNetForward(parsenet_weights(state))
    _assert_same_logits(want, forward.logits(x))
    _assert_same_logits(want, forward.logits(x))  # again, in the buffers the first call left


@pytest.mark.parametrize("in_cpu_kernels", [True, False], ids=["oneDNN in place", "ordinary convolution"])
@pytest.mark.parametrize("width, side", [("narrow", 512), ("released", 128)])
def test_parsenet_in_bfloat16_stays_near_its_float32_logits(narrow_state, released_width_state, monkeypatch, width,
                                                            side, in_cpu_kernels):
    if not in_cpu_kernels:
        monkeypatch.setattr(cpu_forward, "supported", lambda: False)
    weights = parsenet_weights(narrow_state if width == "narrow" else released_width_state)
    x = torch.rand(1, 3, side, side, generator=torch.Generator().manual_seed(side)) * 2 - 1
    exact, fast = ParseNetForward(weights), ParseNetForward(weights, dtype=torch.bfloat16)
    want, got = exact.logits(x), fast.logits(x)
    assert got.dtype == torch.bfloat16 and got.shape == want.shape
    # bf16 keeps 8 bits: a few of them lost over the network's depth, not the logits' shape.
    assert (got.float() - want).abs().max().item() <= 0.08 * want.abs().max().item()
    assert fast.workspace_bytes * 2 == exact.workspace_bytes


def test_parsenet_forward_takes_each_size_after_another(narrow_state):
    forward, reference = ParseNetForward(parsenet_weights(narrow_state)), _reference_parsenet(narrow_state)
    for side in (128, 256, 64, 256):
        x = torch.rand(1, 3, side, side) * 2 - 1
        with torch.inference_mode():
            _assert_same_logits(reference(x)[0], forward.logits(x))
    with pytest.raises(ValueError, match="multiple of 16"):
        forward.logits(torch.zeros(1, 3, 72, 72))


def test_bisenet_forward_gives_facexlibs_main_logits(tmp_path):
    torch.manual_seed(2)
    net = _with_running_statistics(facexlib_parsing.bisenet.BiSeNet(num_class=19), 2)
    torch.save(net.state_dict(), tmp_path / "parsing_bisenet.pth")
    parser = load_parser("bisenet", [tmp_path])
    x = torch.rand(1, 3, 128, 128) * 2 - 1
    with torch.inference_mode():
        want = net(x)[0]
    _assert_same_logits(want, parser.forward.logits(x))


def _face_crops(photo, detector) -> list[np.ndarray]:
    from gpen_pipeline import find_faces

    aligned, _ = align_faces(photo, find_faces(photo, detector).selected, PARSE_SIZE)
    return list(crops_to_numpy(cut_crops(as_tensor(photo), [a.affine for a in aligned], PARSE_SIZE)))


@pytest.mark.parametrize("width", ["narrow", "released"])
def test_labels_of_real_faces_are_facexlibs(narrow_state, released_width_state, tmp_path, astronaut, detector, width):
    state = narrow_state if width == "narrow" else released_width_state
    torch.save(state, tmp_path / "parsing_parsenet.pth")
    parser = load_parser("parsenet", [tmp_path])
    reference = _reference_parsenet(state)
    for crop in _face_crops(astronaut, detector):
        x = torch.from_numpy(((crop / 255.0 - 0.5) / 0.5).astype(np.float32).transpose(2, 0, 1)[None].copy())
        with torch.inference_mode():
            logits = reference(x)[0][0]
        got = parse_labels(parser, crop)
        differ = got != logits.argmax(0).numpy()
        # Only where two classes tie to float rounding may the argmax differ.
        top2 = logits.topk(2, dim=0).values
        assert differ.mean() < 1e-3 and bool(((top2[0] - top2[1])[torch.from_numpy(differ)] < 1e-5).all())


def test_the_parser_gets_a_bfloat16_forward_only_where_that_is_fast_and_fp32_was_not_asked_for(fixtures_dir,
                                                                                                 tmp_path):
    shutil.copy(fixtures_dir / "parsenet_narrow.pth", tmp_path / "parsing_parsenet.pth")
    auto = load_parser("parsenet", [tmp_path])
    assert (auto.fast is not None) == fast_bf16("cpu")
    assert auto.forward.dtype == torch.float32 and (auto.fast is None or auto.fast.dtype == torch.bfloat16)
    assert load_parser("parsenet", [tmp_path], precision="fp32").fast is None
    with pytest.raises(ValueError, match="precision must be one of auto, fp32, got 'bf16'"):
        load_parser("parsenet", [tmp_path], precision="bf16")


def test_weights_that_are_not_parsenet_are_refused_naming_the_key(narrow_state, tmp_path):
    broken = dict(narrow_state)
    del broken["body.3.conv2.norm.norm.running_var"]
    torch.save(broken, tmp_path / "parsing_parsenet.pth")
    with pytest.raises(ValueError, match=r"parsing_parsenet.pth do not fit .*body.3.conv2.norm.norm.running_var"):
        load_parser("parsenet", [tmp_path])
    torch.save({**narrow_state, "extra.weight": torch.zeros(1)}, tmp_path / "parsing_parsenet.pth")
    with pytest.raises(ValueError, match="unexpected key 'extra.weight'"):
        load_parser("parsenet", [tmp_path])


def test_a_half_size_parse_gives_labels_at_full_size(fixtures_dir, tmp_path, astronaut, detector):
    """What bench/parser_masks.py compares: the logits of a 256 parse resized, then the argmax."""
    shutil.copy(fixtures_dir / "parsenet_narrow.pth", tmp_path / "parsing_parsenet.pth")
    parser = load_parser("parsenet", [tmp_path])
    (crop,) = _face_crops(astronaut, detector)
    small = parse_labels(parser, crop, SMALL_PARSE_SIZE)
    assert small.shape == (PARSE_SIZE, PARSE_SIZE) and small.dtype == np.uint8
    x = torch.from_numpy(((cv2.resize(crop, (256, 256), interpolation=cv2.INTER_AREA) / 255.0 - 0.5) / 0.5)
                         .astype(np.float32).transpose(2, 0, 1)[None].copy())
    logits = torch.nn.functional.interpolate(parser.forward.logits(x), size=(512, 512), mode="bilinear")
    assert (small == logits.argmax(1)[0].numpy()).mean() > 0.999
    with pytest.raises(ValueError, match="parse_size must be 512 or 256"):
        parse_labels(parser, crop, 384)
