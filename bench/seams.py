"""Seam benchmark: how visible the paste is, for the feathered and the multi-band blend.

Run from the repository root:

    .venv/bin/python bench/seams.py                 # prints the table, writes bench/results/seams.json
    .venv/bin/python bench/seams.py --picture docs/seam.png   # also a crop of a seam, before/after

The photos (public-domain pictures shipped by scikit-image and matplotlib) are made grainy and
JPEG-compressed, like a scan or a phone picture. The "restorer" is an identity with the faults
restorers have: it returns each crop denoised, re-sharpened and shifted in tone, so the seam is the
only thing measured. Per variant, averaged over the faces:

- edge/photo: gradient energy of the result where the mask crosses over (0.1 < m < 0.9), over the
  photo's own gradient energy at the same pixels (goal <= 1.2);
- dE: CIELAB colour difference between a ring just inside and a ring just outside the mask, minus
  the photo's own difference between the same rings (goal < 2);
- noise in/out: the result's noise level inside the face over the photo's own there, the noise the
  rest of the picture has (goal within 20 % of 1).

Auto strength (sharpness_limit) is measured on the same photos out of focus (Gaussian blur of
sigma 2), restored into the sharp photo's crops (detail the soft photo never had): the face's
middle's RMS gradient over that of a band around its box, for the limit off and on, beside the
soft photo's own ratio.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cv2
import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gpen_pipeline import (DEFAULT_DETECTOR, PasteOptions, RestoredFace, align_faces, find_faces,  # noqa: E402
                           load_detector, paste_back, paste_guarded)
from gpen_pipeline.blend import noise_level  # noqa: E402
from gpen_pipeline.cut import as_tensor, cut_crops  # noqa: E402

SIZE = 256
VARIANTS = {
    "feather": PasteOptions(),
    "feather + colour": PasteOptions(color_match=True),
    "feather + colour + grain": PasteOptions(color_match=True, grain=True),
    "multiband": PasteOptions(blend="multiband"),
    "multiband + colour + grain": PasteOptions(blend="multiband", color_match=True, grain=True),
}


SHARPNESS_LIMITS = (0.0, 2.0, 1.5, 1.2)


def sharp_photos() -> list[np.ndarray]:
    import matplotlib.cbook
    import skimage.data

    hopper = cv2.cvtColor(cv2.imread(str(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))),
                          cv2.COLOR_BGR2RGB)
    return [skimage.data.astronaut(), hopper]


def grainy_photos() -> list[np.ndarray]:
    rng = np.random.default_rng(7)
    photos = []
    for photo in sharp_photos():
        noisy = np.clip(photo + rng.normal(0.0, 6.0, photo.shape), 0, 255).astype(np.uint8)
        ok, jpeg = cv2.imencode(".jpg", cv2.cvtColor(noisy, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 80])
        photos.append(cv2.cvtColor(cv2.imdecode(jpeg, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB))
    return photos


def faulty_restorer(crop: np.ndarray) -> np.ndarray:
    """Denoised (plastic), re-sharpened and warmer/brighter: the faults a restorer brings."""
    smooth = cv2.bilateralFilter(crop, 7, 40, 5)
    sharp = cv2.addWeighted(smooth, 1.6, cv2.GaussianBlur(smooth, (0, 0), 2.0), -0.6, 0)
    shifted = sharp.astype(np.float32) + np.array([12.0, 4.0, -6.0])
    return np.clip(shifted, 0, 255).astype(np.uint8)


def restored_faces(photo: np.ndarray, detector) -> list[RestoredFace]:
    aligned, _ = align_faces(photo, find_faces(photo, detector).selected, SIZE)
    crops = cut_crops(as_tensor(photo), [a.affine for a in aligned], SIZE)
    records = []
    for record, crop in zip(aligned, crops):
        restored = faulty_restorer(np.ascontiguousarray(crop.permute(1, 2, 0).numpy()))
        records.append(RestoredFace(record, torch.from_numpy(restored).permute(2, 0, 1).contiguous(), crop))
    return records


def _ring(mask: np.ndarray, inside: bool, width: int = 6) -> np.ndarray:
    support = (mask > 0.99) if inside else (mask > 0)
    kernel = np.ones((2 * width + 1, 2 * width + 1), np.uint8)
    if inside:
        return support & ~cv2.erode(support.astype(np.uint8), kernel).astype(bool)
    return ~support & cv2.dilate(support.astype(np.uint8), kernel).astype(bool)


def _gradient_energy(image: np.ndarray) -> np.ndarray:
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32)
    return cv2.Sobel(grey, cv2.CV_32F, 1, 0) ** 2 + cv2.Sobel(grey, cv2.CV_32F, 0, 1) ** 2


def _lab(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(image.astype(np.float32) / 255.0, cv2.COLOR_RGB2Lab)


def seam_figures(photo: np.ndarray, result: np.ndarray, mask: np.ndarray) -> dict:
    band = (mask > 0.1) & (mask < 0.9)
    edge = float(_gradient_energy(result)[band].mean() / _gradient_energy(photo)[band].mean())
    ring_in, ring_out = _ring(mask, True), _ring(mask, False)
    step = _lab(result)[ring_in].mean(0) - _lab(result)[ring_out].mean(0)
    natural = _lab(photo)[ring_in].mean(0) - _lab(photo)[ring_out].mean(0)
    # The photo's own noise is judged on the face too: around it, flags and hair read as texture.
    inside = torch.from_numpy(mask > 0.95)
    planes = lambda image: torch.from_numpy(image).permute(2, 0, 1).float()  # noqa: E731
    noise_in = noise_level(planes(result), inside).mean()
    noise_out = noise_level(planes(photo), inside).mean()
    return {"edge_over_photo": edge, "delta_e": float(np.linalg.norm(step - natural)),
            "noise_in_over_out": float(noise_in / noise_out)}


def one_face_at_a_time(photo: np.ndarray, faces: list[RestoredFace], options: PasteOptions) -> list[dict]:
    out = []
    for face in faces:
        result = paste_back(photo, [face], options)
        out.append(seam_figures(photo, result.image.numpy(), result.mask.numpy()))
    return out


def sharpness_ratio(image: np.ndarray, box) -> float:
    """RMS gradient of the face's middle over that of a band around its box (out to half its size)."""
    energy = _gradient_energy(image)
    x0, y0, x1, y1 = (int(round(v)) for v in box)
    size = max(x1 - x0, y1 - y0)
    middle = energy[y0 + size // 4:y1 - size // 4, x0 + size // 4:x1 - size // 4]
    band = np.zeros(energy.shape, bool)
    band[max(0, y0 - size // 2):y1 + size // 2, max(0, x0 - size // 2):x1 + size // 2] = True
    band[y0:y1, x0:x1] = False
    return float(np.sqrt(middle.mean() / energy[band].mean()))


def auto_strength_rows(detector) -> dict:
    """Per limit: the face's sharpness ratio over the soft photo's own, and the strength used."""
    rows: dict = {limit: [] for limit in SHARPNESS_LIMITS}
    for sharp in sharp_photos():
        soft = cv2.GaussianBlur(sharp, (0, 0), 2.0)
        aligned, _ = align_faces(soft, find_faces(soft, detector).selected, SIZE)
        crops = cut_crops(as_tensor(soft), [a.affine for a in aligned], SIZE)
        detail = cut_crops(as_tensor(sharp), [a.affine for a in aligned], SIZE)
        for record, crop, restored in zip(aligned, crops, detail):
            own = sharpness_ratio(soft, record.face.box)
            for limit in SHARPNESS_LIMITS:
                result, (how,) = paste_guarded(soft, [RestoredFace(record, restored, crop)],
                                               PasteOptions(sharpness_limit=limit))
                rows[limit].append((sharpness_ratio(result.image.numpy(), record.face.box) / own, how.strength))
    return {f"limit {limit:g}" if limit else "off": {"sharpness_over_photo": float(np.mean([r[0] for r in found])),
                                                   "strength": float(np.mean([r[1] for r in found]))}
            for limit, found in rows.items()}


def picture(path: Path, photo: np.ndarray, faces: list[RestoredFace]) -> None:
    """The first face, side by side: the photo, the feathered paste, and multi-band with colour and grain."""
    face = faces[0]
    x0, y0, x1, y1 = (int(v) for v in face.aligned.face.box)
    pad = (x1 - x0) // 2
    crop = (slice(max(0, y0 - pad // 2), y1 + pad // 2), slice(max(0, x0 - pad), x1))
    panels = [photo[crop]] + [paste_back(photo, [face], VARIANTS[name]).image.numpy()[crop]
                              for name in ("feather", "multiband + colour + grain")]
    row = np.concatenate(panels, axis=1)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor(row, cv2.COLOR_RGB2BGR))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, default=ROOT / "bench" / "results" / "seams.json")
    parser.add_argument("--picture", type=Path, help="write a before/after crop of a seam here")
    args = parser.parse_args()
    torch.set_num_threads(2)
    detector = load_detector(DEFAULT_DETECTOR)
    photos = grainy_photos()
    faces = [restored_faces(photo, detector) for photo in photos]
    table = {}
    for name, options in VARIANTS.items():
        rows = [row for photo, found in zip(photos, faces) for row in one_face_at_a_time(photo, found, options)]
        table[name] = {key: float(np.mean([row[key] for row in rows])) for key in rows[0]}
        figures = table[name]
        print(f"{name:28s} edge/photo {figures['edge_over_photo']:.2f}  dE {figures['delta_e']:.2f}  "
              f"noise in/out {figures['noise_in_over_out']:.2f}")
    auto = auto_strength_rows(detector)
    for name, figures in auto.items():
        print(f"soft photo, sharpness {name:9s} face sharpness / photo's own {figures['sharpness_over_photo']:.2f}"
              f"  strength {figures['strength']:.2f}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"faces": sum(map(len, faces)), "variants": table, "auto_strength": auto},
                                    indent=1) + "\n")
    if args.picture:
        picture(args.picture, photos[1], faces[1])
        print(f"wrote {args.picture}")


if __name__ == "__main__":
    main()
