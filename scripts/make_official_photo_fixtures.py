"""Make tests/fixtures/gpen/official_photos.{npz,json}: the official GPEN code on real photos.

The official pipeline (`FaceEnhancement.process`) is run with a face parser in the loop on five
portraits and a group picture with overlapping faces of three sizes, and the official
colorization (`FaceColorization.process`) on aligned grey crops at the model's size. Its learned
parts are stood in for by small random networks that our side loads too: the s256 GPEN fixture
(tests/fixtures/gpen/gpen_s256_cm1_n00625.pth) and a narrow random ParseNet saved here
(parsenet_narrow.pth, the released architecture with fewer channels); the detector by the
landmarks our bundled detector finds (stored with the fixture); no super-resolution.

The official code has no licence: it is run from a local copy, never committed. Usage:

    git clone https://github.com/yangxy/GPEN /tmp/gpen_src     # any copy of its .py files
    .venv/bin/python scripts/make_official_photo_fixtures.py --gpen-src /tmp/gpen_src

The photos are built from public-domain pictures that installed packages ship
(scikit-image's astronaut, matplotlib's Grace Hopper), so the test rebuilds nothing from the
network: inputs and outputs are both in the .npz.
"""
from __future__ import annotations

import argparse
import json
import sys
import types
from pathlib import Path

import cv2
import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures" / "gpen"
sys.path.insert(0, str(ROOT))

SIZE = 256
GPEN_FILE = FIXTURES / "gpen_s256_cm1_n00625.pth"
GPEN_CONFIG = dict(size=256, style_dim=64, n_mlp=2, channel_multiplier=1, narrow=0.0625)
PARSER_FILE = FIXTURES / "parsenet_narrow.pth"
PARSER_CONFIG = dict(base_ch=8, ch_range=[8, 16], seed=20)


def source_photos() -> tuple[np.ndarray, np.ndarray]:
    import matplotlib.cbook
    import skimage.data

    hopper = cv2.imread(str(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)))
    return skimage.data.astronaut(), cv2.cvtColor(hopper, cv2.COLOR_BGR2RGB)


def _scaled(image: np.ndarray, factor: float) -> np.ndarray:
    return cv2.resize(image, None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA)


def _rotated(image: np.ndarray, degrees: float) -> np.ndarray:
    h, w = image.shape[:2]
    turn = cv2.getRotationMatrix2D((w / 2, h / 2), degrees, 1.0)
    return cv2.warpAffine(image, turn, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)


def build_photos() -> dict[str, np.ndarray]:
    """RGB uint8 pictures: five portraits (one face each: plain, rotated, small, cut by the border,
    another person) and a group of three close faces of three sizes whose paste masks overlap."""
    astronaut, hopper = source_photos()
    group = cv2.resize(cv2.GaussianBlur(hopper, (0, 0), 9), (400, 260))
    # Tiles tight around each face, side by side: the faces do not touch, their paste masks overlap.
    tiles = ((astronaut[40:200, 135:295], 150, (10, 50)), (hopper[90:360, 120:390], 100, (160, 95)),
             (astronaut[40:200, 295:135:-1], 66, (262, 125)))
    for tile, side, (x, y) in tiles:
        group[y:y + side, x:x + side] = cv2.resize(tile, (side, side), interpolation=cv2.INTER_AREA)
    return {
        "astronaut": _scaled(astronaut, 0.5),
        "astronaut_rotated": _rotated(_scaled(astronaut, 0.5), 14.0),
        "astronaut_small": _scaled(astronaut, 0.3),
        "astronaut_at_border": _scaled(astronaut, 0.6)[40:, 110:],
        "hopper": _scaled(hopper, 0.4),
        "group": np.ascontiguousarray(group),
    }


def find_landmarks(photo: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The official detector's outputs, stood in for by our bundled detector: (N,5) boxes with
    scores and (N,10) landmarks laid out as the official code reads them (five x, then five y)."""
    from gpen_pipeline import DEFAULT_DETECTOR, detect_faces, load_detector

    faces = detect_faces(load_detector(DEFAULT_DETECTOR), photo, 0.9)
    dets = np.array([list(f.box) + [f.score] for f in faces], np.float32).reshape(-1, 5)
    landms = np.array([np.concatenate([f.landmarks[:, 0], f.landmarks[:, 1]]) for f in faces],
                      np.float32).reshape(-1, 10)
    return dets, landms


def make_parser_weights(gpen_src: Path) -> dict:
    """A narrow random ParseNet (the official class), saved for both sides to load."""
    from parse_model import ParseNet

    torch.manual_seed(PARSER_CONFIG["seed"])
    net = ParseNet(512, 512, 32, PARSER_CONFIG["base_ch"], 19, norm_type="bn", relu_type="LeakyReLU",
                   ch_range=PARSER_CONFIG["ch_range"])
    with torch.no_grad():  # random batch-norm statistics, so every layer shapes the labels
        for module in net.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.2, 0.2)
                module.running_var.uniform_(0.5, 2.0)
        # Random weights leave the logits to the biases (one class everywhere): centre each class's
        # logit on a face photo, so the labels follow the picture and flip along its edges.
        face = cv2.resize(source_photos()[0][20:260, 100:340], (512, 512))
        logits = net.eval()(torch.from_numpy(face.transpose(2, 0, 1)[None] / 255.0 * 2 - 1).float())[0]
        net.out_mask_conv.conv2d.bias -= logits.mean((0, 2, 3))
    state = {k: v.clone() for k, v in net.state_dict().items()}
    torch.save(state, PARSER_FILE)
    return state


def official_runner(gpen_src: Path, parser_state: dict, alpha: float):
    """The official FaceEnhancement with our stand-ins for its learned parts."""
    import face_enhancement
    from gpen_model import FullGenerator
    from parse_model import ParseNet

    def gan_weights(self, channel_multiplier=2, narrow=1):
        self.model = FullGenerator(GPEN_CONFIG["size"], GPEN_CONFIG["style_dim"], GPEN_CONFIG["n_mlp"],
                                   GPEN_CONFIG["channel_multiplier"], narrow=GPEN_CONFIG["narrow"], device="cpu")
        self.model.load_state_dict(torch.load(GPEN_FILE, map_location="cpu", weights_only=True))
        self.model.eval()

    def parser_weights(self):
        self.faceparse = ParseNet(self.size, self.size, 32, PARSER_CONFIG["base_ch"], 19, norm_type="bn",
                                  relu_type="LeakyReLU", ch_range=PARSER_CONFIG["ch_range"])
        self.faceparse.load_state_dict(parser_state)
        self.faceparse.eval()

    # Through the classes face_enhancement itself imported (its modules load under two names).
    face_enhancement.FaceGAN.load_model = gan_weights
    face_enhancement.FaceParse.load_model = parser_weights

    class GivenFaces:
        def __init__(self, *args, **kwargs):
            self.faces = None

        def detect(self, img):
            return self.faces

    face_enhancement.RetinaFaceDetection = GivenFaces
    face_enhancement.RealESRNet = lambda *args, **kwargs: None
    args = types.SimpleNamespace(channel_multiplier=1, narrow=1, key=None, sr_model=None, sr_scale=2,
                                 tile_size=0, alpha=alpha)
    return face_enhancement.FaceEnhancement(args, base_dir=str(gpen_src), in_size=SIZE, model="unused",
                                            use_sr=False, device="cpu")


def official_colorize(crops_bgr: list[np.ndarray]) -> list[np.ndarray]:
    import face_colorization

    colorizer = face_colorization.FaceColorization(base_dir="unused", in_size=SIZE, out_size=SIZE, model="unused",
                                                   device="cpu")
    return [colorizer.process(crop)[0] for crop in crops_bgr]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gpen-src", type=Path, required=True, help="a local copy of github.com/yangxy/GPEN")
    parser.add_argument("--gpen-commit", default="unknown", help="the commit of that copy, for the record")
    args = parser.parse_args()
    torch.set_num_threads(1)
    sys.path.insert(0, str(args.gpen_src))
    import __init_paths  # noqa: F401  (the official code's own path setup)
    from align_faces import warp_and_crop_face

    parser_state = make_parser_weights(args.gpen_src)
    photos = build_photos()
    arrays, record = {}, {"made_by": "scripts/make_official_photo_fixtures.py", "gpen_commit": args.gpen_commit,
                          "torch": torch.__version__, "opencv": cv2.__version__, "size": SIZE,
                          "gpen_weights": GPEN_FILE.name, "gpen_config": GPEN_CONFIG,
                          "parser_weights": PARSER_FILE.name, "parser_config": PARSER_CONFIG,
                          "parser_parameters": int(sum(v.numel() for v in parser_state.values())),
                          "photos": {}}
    runners = {alpha: official_runner(args.gpen_src, parser_state, alpha) for alpha in (1.0, 0.8)}
    grey_crops = []
    for name, photo in photos.items():
        dets, landms = find_landmarks(photo)
        arrays[f"{name}_input"], arrays[f"{name}_dets"], arrays[f"{name}_landms"] = photo, dets, landms
        bgr = cv2.cvtColor(photo, cv2.COLOR_RGB2BGR)
        alphas = (1.0, 0.8) if name == "group" else (1.0,)
        for alpha in alphas:
            runner = runners[alpha]
            runner.facedetector.faces = (dets, landms)
            out, _, _ = runner.process(bgr.copy())
            arrays[f"{name}_alpha{alpha:g}"] = cv2.cvtColor(out, cv2.COLOR_BGR2RGB)
        record["photos"][name] = {"shape": list(photo.shape), "faces": len(dets),
                                  "alphas": list(alphas)}
        if name in ("astronaut", "hopper", "astronaut_rotated"):
            crop, _ = warp_and_crop_face(bgr, landms[0].reshape(2, 5), reference_pts=runners[1.0].reference_5pts,
                                         crop_size=(SIZE, SIZE))
            grey_crops.append(cv2.cvtColor(cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR))
    coloured = official_colorize(grey_crops)
    arrays["colorize_input"] = np.stack([cv2.cvtColor(c, cv2.COLOR_BGR2RGB) for c in grey_crops])
    arrays["colorize_output"] = np.stack([cv2.cvtColor(c, cv2.COLOR_BGR2RGB) for c in coloured])
    np.savez_compressed(FIXTURES / "official_photos.npz", **arrays)
    (FIXTURES / "official_photos.json").write_text(json.dumps(record, indent=1) + "\n")
    print(f"wrote {FIXTURES / 'official_photos.npz'} ({(FIXTURES / 'official_photos.npz').stat().st_size // 1024} KB)"
          f" and {PARSER_FILE.name} ({PARSER_FILE.stat().st_size // 1024} KB)")


if __name__ == "__main__":
    main()
