"""Face-parser benchmark: our ParseNet forward against facexlib's eager module, its convolution floor
and the GPEN-512 forward, and a whole one-face enhance in each mask mode; all in one run.

Run from the repository root:

    .venv/bin/python bench/parser.py                   # ParseNet of the released widths (64, [32, 256])
    .venv/bin/python bench/parser.py --repeats 3

1. The forward at 512 and at 256: ours in float32 and in bfloat16 (what the
   parse mask runs on a CPU with AMX), facexlib's module (eager, as users ran it
   before), GPEN-512 (random weights), alternating, on a worker thread as in
   ComfyUI, medians after a warm-up. Against two floors: ParseNet's multiply-adds
   over the machine's dense 3x3 rate (as bench/network.py measures GPEN's), and
   the sum of the best times of its own convolutions, each run alone by
   F.conv2d at its shape (its thin full-size layers run below the dense rate).
   BiSeNet at 512 the same way: ours, facexlib's module, its convolutions' floor.
2. One 1280x720 frame with one face through `enhance_images` in mask mode box,
   parse and official, the parser loaded by `load_parser` as users load it; what
   parsing adds per face, against the GPEN-512 forward of step 1.
Writes bench/results/parser.json.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from gpen_arch import GPENModel  # noqa: E402
from gpen_pipeline import DEFAULT_DETECTOR, EnhanceOptions, PasteOptions, enhance_images, load_detector  # noqa: E402
from gpen_pipeline.bisenet import BiSeNetForward  # noqa: E402
from gpen_pipeline.parsenet import ParseNetForward, ParseNetWeights, parsenet_weights  # noqa: E402
from gpen_pipeline.hardware import fast_bf16  # noqa: E402
from gpen_pipeline.parsing import load_parser  # noqa: E402
from network import GMAC, conv_rate, on_worker_thread, random_gpen, take_turns  # noqa: E402
from pipeline import frame_720p  # noqa: E402

CL = torch.channels_last


def eager_convolutions(weights: ParseNetWeights, side: int) -> list[tuple[int, int, int, int]]:
    """(in, out, padded input side, stride) of each convolution facexlib's module runs at `side`
    (the image head included, as it runs there too)."""
    convs = [(3, weights.first.out_channels, side + 2, 1)]
    for block in weights.blocks:
        cin, cout = block.conv1.in_channels, block.conv1.out_channels
        if block.scale == "down":
            convs += [(cin, cout, side + 2, 1), (cout, cout, side + 2, 2), (cin, cout, side + 2, 2)]
            side //= 2
        elif block.scale == "up":
            side *= 2
            convs += [(cin, cout, side + 2, 1), (cout, cout, side + 2, 1), (cin, cout, side + 2, 1)]
        else:
            convs += [(cin, cout, side + 2, 1), (cout, cout, side + 2, 1)]
            if block.shortcut is not None:
                convs.append((cin, cout, side + 2, 1))
    head = weights.mask_out.in_channels
    return convs + [(head, weights.classes, side + 2, 1), (head, 3, side + 2, 1)]


def macs(convs) -> float:
    return sum(cin * cout * 9 * ((padded - 3) // stride + 1) ** 2 for cin, cout, padded, stride in convs) / 1e9


def our_gmac(weights: ParseNetWeights, side: int) -> float:
    """Ours: no image head, and each up block's conv1 and shortcut as four 2x2 phase convolutions."""
    total = macs(eager_convolutions(weights, side)) * 1e9
    head = weights.mask_out.in_channels
    total -= head * 3 * 9 * side ** 2
    low = side // 2 ** len(weights.encoder)
    for block in weights.decoder:
        cin, cout = block.conv1.in_channels, block.conv1.out_channels
        total -= 2 * cin * cout * 9 * (2 * low) ** 2  # the two 3x3 convolutions over the upsampling
        total += 4 * 2 * cin * cout * 4 * (low + 1) ** 2
        low *= 2
    return total / 1e9


def best_time(run, repeats: int) -> float:
    """The fastest of `repeats` timed runs of `run`, after one warm-up."""
    run()
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - started)
    return best


def summed_floor(convs, repeats: int) -> float:
    """Sum of the best times of each convolution run alone (channels-last, as padded)."""
    best: dict[tuple, float] = {}
    with torch.inference_mode():
        for shape in set(convs):
            cin, cout, padded, stride = shape
            x = torch.randn(1, cin, padded, padded).contiguous(memory_format=CL)
            w = torch.randn(cout, cin, 3, 3).contiguous(memory_format=CL)
            best[shape] = best_time(lambda: F.conv2d(x, w, stride=stride), repeats)
    return sum(best[shape] for shape in convs)


def forward_rows(state, gpen, rate: float, sides, repeats: int) -> list[dict]:
    from facexlib.parsing.parsenet import ParseNet

    weights = parsenet_weights(state)
    blocks = [b.conv1.out_channels for b in weights.blocks]
    eager = ParseNet(in_size=512, out_size=512, parsing_ch=19, base_ch=weights.first.out_channels,
                     ch_range=[min(blocks), max(blocks)], res_depth=len(weights.body)).eval()
    eager.load_state_dict(state)
    ours, ours_bf16 = ParseNetForward(weights), ParseNetForward(weights, dtype=torch.bfloat16)
    face = torch.rand(1, 3, 512, 512) * 2 - 1
    rows = []
    for side in sides:
        x = torch.rand(1, 3, side, side) * 2 - 1
        runs = {"ours": lambda: ours.logits(x), "ours_bf16": lambda: ours_bf16.logits(x), "facexlib": lambda: eager(x),
                "gpen512": lambda: gpen(face)}
        with torch.inference_mode():
            times = take_turns(runs, repeats)
        convs = eager_convolutions(weights, side)
        median = {name: statistics.median(t) for name, t in times.items()}
        floor = summed_floor(convs, repeats)
        row = {"side": side, "parsenet_gmac": macs(convs), "ours_gmac": our_gmac(weights, side),
               "ours_s": median["ours"], "facexlib_s": median["facexlib"], "gpen512_s": median["gpen512"],
               "summed_conv_floor_s": floor, "dense_rate_floor_s": macs(convs) / rate,
               "ours_over_facexlib": median["ours"] / median["facexlib"],
               "ours_over_summed_floor": median["ours"] / floor,
               # The floor is each convolution's best time: the best run of ours is its like.
               "fastest_ours_over_summed_floor": min(times["ours"]) / floor,
               "fastest_ours_over_facexlib": min(times["ours"]) / min(times["facexlib"]),
               "ours_over_dense_floor": median["ours"] / (macs(convs) / rate),
               "ours_over_gpen512": median["ours"] / median["gpen512"],
               "fastest_ours_over_gpen512": min(times["ours"]) / min(times["gpen512"]),
               # Our own arithmetic's rate against the dense one: how near the machine's rate we run.
               "ours_share_of_dense_rate": our_gmac(weights, side) / min(times["ours"]) / rate,
               # What the parse mask runs where bf16 is fast (parsing.FaceParser.fast); measured anywhere.
               "ours_bf16_s": median["ours_bf16"], "bf16_fast_here": fast_bf16("cpu"),
               "ours_bf16_over_ours": median["ours_bf16"] / median["ours"],
               "ours_bf16_over_gpen512": median["ours_bf16"] / median["gpen512"],
               "runs": times, "workspace_mb": ours.workspace_bytes / 2**20,
               "workspace_bf16_mb": ours_bf16.workspace_bytes / 2**20}
        rows.append(row)
        print(f"ParseNet at {side}: ours {row['ours_s']:.2f} s, facexlib {row['facexlib_s']:.2f} s "
              f"({row['ours_over_facexlib']:.2f}x, fastest runs {row['fastest_ours_over_facexlib']:.2f}x), GPEN-512 {row['gpen512_s']:.2f} s "
              f"(ours {row['ours_over_gpen512']:.2f}x of it, fastest runs {row['fastest_ours_over_gpen512']:.2f}x); "
              f"floors: its convolutions summed {floor:.2f} s (ours {row['ours_over_summed_floor']:.2f}x, fastest run "
              f"{row['fastest_ours_over_summed_floor']:.2f}x), "
              f"{row['parsenet_gmac']:.0f} GMAC at the dense rate {row['dense_rate_floor_s']:.2f} s "
              f"(ours {row['ours_over_dense_floor']:.2f}x); ours computes {row['ours_gmac']:.0f} GMAC, at "
              f"{row['ours_share_of_dense_rate']:.0%} of the dense rate in its fastest run; in bf16 "
              f"{row['ours_bf16_s']:.2f} s ({row['ours_bf16_over_ours']:.2f}x fp32, "
              f"{row['ours_bf16_over_gpen512']:.2f}x GPEN-512; the parse mask uses it here: "
              f"{row['bf16_fast_here']})", flush=True)
    return rows


def bisenet_row(gpen, repeats: int) -> dict:
    """BiSeNet at 512: ours (BatchNorm folded, channels-last, main head only) against facexlib's
    module, GPEN-512, and the summed best times of the convolutions ours runs, each alone."""
    from facexlib.parsing.bisenet import BiSeNet

    torch.manual_seed(0)
    eager = BiSeNet(num_class=19).eval()
    ours = BiSeNetForward(eager.state_dict())
    x, face = torch.rand(1, 3, 512, 512) * 2 - 1, torch.rand(1, 3, 512, 512) * 2 - 1
    shapes = []
    hooks = [m.register_forward_hook(lambda m, args, out: shapes.append(
        (tuple(args[0].shape), m.weight, m.stride, m.padding, m.dilation, m.groups, out.shape[-2] * out.shape[-1])))
        for m in ours.net.modules() if isinstance(m, torch.nn.Conv2d)]
    ours.logits(x)
    for hook in hooks:
        hook.remove()
    gmac = sum(weight.numel() * pixels for _, weight, *_, pixels in shapes) / 1e9
    floor = 0.0
    with torch.inference_mode():
        for shape, weight, stride, pad, dil, groups, _ in shapes:
            xi = torch.randn(shape).contiguous(memory_format=CL)
            wi = weight.detach().contiguous(memory_format=CL)
            floor += best_time(lambda: F.conv2d(xi, wi, None, stride, pad, dil, groups), repeats)
        times = take_turns({"ours": lambda: ours.logits(x), "facexlib": lambda: eager(x),
                            "gpen512": lambda: gpen(face)}, repeats)
    median = {name: statistics.median(t) for name, t in times.items()}
    row = {"side": 512, "ours_gmac": gmac, "ours_s": median["ours"], "facexlib_s": median["facexlib"],
           "gpen512_s": median["gpen512"], "summed_conv_floor_s": floor,
           "ours_over_facexlib": median["ours"] / median["facexlib"], "ours_over_summed_floor": median["ours"] / floor,
           "ours_over_gpen512": median["ours"] / median["gpen512"], "runs": times}
    print(f"BiSeNet at 512: ours {row['ours_s']:.3f} s ({gmac:.1f} GMAC), facexlib {row['facexlib_s']:.3f} s "
          f"({row['ours_over_facexlib']:.2f}x), its convolutions summed {floor:.3f} s "
          f"({row['ours_over_summed_floor']:.2f}x), GPEN-512 {row['gpen512_s']:.2f} s "
          f"({row['ours_over_gpen512']:.2f}x of it)", flush=True)
    return row


def enhance_rows(state, model, network_s: float, repeats: int) -> dict:
    """Whole one-face enhances in each mode; what parsing adds is set against `network_s`, the
    GPEN-512 forward's median in the same run."""
    detector = load_detector(DEFAULT_DETECTOR)
    frame = frame_720p(0)
    with tempfile.TemporaryDirectory() as folder:
        torch.save(state, Path(folder) / "parsing_parsenet.pth")
        parser = load_parser("parsenet", [folder])
    runs = {mode: (lambda m=mode: enhance_images([frame], model, detector,
                                                 EnhanceOptions(paste=PasteOptions(mask_mode=m)), parser))
            for mode in ("box", "parse", "official")}
    times = take_turns(runs, repeats)
    faces = len(runs["box"]()[0].faces)
    out = {mode: statistics.median(t) / faces for mode, t in times.items()}
    out.update(faces=faces, parse_precision="bf16" if parser.fast is not None else "fp32", network_s=network_s,
               parse_added_over_network=(out["parse"] - out["box"]) / network_s,
               official_added_over_network=(out["official"] - out["box"]) / network_s)
    print(f"1280x720, {faces} face: whole enhance per face: box {out['box']:.2f} s, parse {out['parse']:.2f} s "
          f"(+{out['parse'] / out['box'] - 1:.0%}; parsing in {out['parse_precision']} adds "
          f"{out['parse_added_over_network']:.2f}x the network's {network_s:.2f} s), official {out['official']:.2f} s "
          f"(+{out['official'] / out['box'] - 1:.0%}; {out['official_added_over_network']:.2f}x the network)",
          flush=True)
    return out


def released_width_parsenet(seed: int = 0) -> dict:
    from facexlib.parsing.parsenet import ParseNet

    torch.manual_seed(seed)
    return ParseNet(in_size=512, out_size=512, parsing_ch=19).state_dict()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--sides", type=int, nargs="+", default=[512, 256])
    parser.add_argument("--json", type=Path, default=ROOT / "bench" / "results" / "parser.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rate = conv_rate(args.threads)
    print(f"dense 3x3 convolution: {rate:.1f} GMAC/s; GPEN-512 is {GMAC[512]:.0f} GMAC", flush=True)
    state = released_width_parsenet()
    gpen = random_gpen(512)
    rows = on_worker_thread(forward_rows, state, gpen, rate, args.sides, args.repeats)
    bisenet = on_worker_thread(bisenet_row, gpen, args.repeats)
    enhance = on_worker_thread(enhance_rows, state, GPENModel.of(gpen), rows[0]["gpen512_s"],
                               max(1, args.repeats // 2 + 1))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"threads": args.threads, "dense_conv_gmac_per_s": rate,
                                     "forward": rows, "bisenet": bisenet, "enhance_per_face_s": enhance}, indent=2))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
