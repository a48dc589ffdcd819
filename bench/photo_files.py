"""What the command line's JPEG output keeps of its input: pixels away from the faces, size, metadata.

    .venv/bin/python bench/photo_files.py [--json bench/results/photo_files.json]

Real photos (the repo's samples/astronaut.jpg, matplotlib's grace_hopper.jpg, insightface's t1.jpg
group photo) are saved as 4:4:4 and 4:2:0 JPEGs (quality 90) with an ICC profile, EXIF, XMP and a
comment, and restored by the random-weight 64 px fixture GPEN with the bundled detector, through
restore_file's steps. "before" writes the restored pixels as the pack did (cv2.imencode's defaults),
"after" as it does now (photo_files.write_restored: the source's DCT blocks away from the faces).
Per row: the pixels outside the faces' paste masks that decode differently from the input, those
farther than one block and one chroma sample from any face pixel (the promise: 0), the size
output/input, and whether the ICC profile, EXIF, subsampling and quantisation tables survived.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from fixture_files import S64_MODEL_FILE, load_fixture_model  # noqa: E402


def photos() -> dict[str, np.ndarray]:
    import insightface
    import matplotlib.cbook

    paths = {"astronaut": ROOT / "samples" / "astronaut.jpg",
             "grace_hopper": Path(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)),
             "group_t1": Path(insightface.__file__).parent / "data" / "images" / "t1.jpg"}
    return {name: cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB) for name, path in paths.items()}


def save_jpeg(path: Path, rgb: np.ndarray, subsampling: int, icc: bytes) -> None:
    from PIL import Image

    image = Image.fromarray(rgb)
    exif = image.getexif()
    exif[0x010F] = "bench camera"
    image.save(path, quality=90, subsampling=subsampling, icc_profile=icc, exif=exif.tobytes(), comment=b"bench",
               xmp=b'<x:xmpmeta xmlns:x="adobe:ns:meta/"/>')


def kept(source: Path, output: Path) -> dict:
    from PIL import Image, JpegImagePlugin

    with Image.open(source) as a, Image.open(output) as b:
        return {"icc": a.info.get("icc_profile") == b.info.get("icc_profile"),
                "exif": a.info.get("exif") == b.info.get("exif"),
                "subsampling_kept": JpegImagePlugin.get_sampling(a) == JpegImagePlugin.get_sampling(b),
                "tables": a.quantization == b.quantization}


def row(name: str, kind: str, source: Path, output: Path, written: np.ndarray, reach: int) -> dict:
    differ = (cv2.imread(str(source)) != cv2.imread(str(output))).any(axis=2)
    far = cv2.dilate(written, np.ones((2 * reach + 1, 2 * reach + 1), np.uint8)) == 0
    return {"photo": name, "subsampling": kind, "writer": output.stem.split("-")[-1],
            "face_pixels": int(written.sum()), "differ_outside_faces": int((differ & (written == 0)).sum()),
            "differ_beyond_blocks": int((differ & far).sum()),
            "size_ratio": round(output.stat().st_size / source.stat().st_size, 3), **kept(source, output)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args()
    from PIL import ImageCms

    from gpen_pipeline import DEFAULT_DETECTOR, load_detector
    from gpen_pipeline.file_restore import enhance_pixels
    from gpen_pipeline.image_files import read_pixels, write_image
    from gpen_pipeline.photo_files import write_restored

    model, detector = load_fixture_model(S64_MODEL_FILE), load_detector(DEFAULT_DETECTOR, device="cpu")
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        for name, rgb in photos().items():
            for kind, subsampling, reach in (("4:4:4", 0, 9), ("4:2:0", 2, 19)):
                source = folder / f"{name}-{subsampling}.jpg"
                save_jpeg(source, rgb, subsampling, icc)
                decoded = read_pixels(source)
                result = enhance_pixels(decoded.pixels.copy(), model, detector)
                written = np.zeros(decoded.pixels.shape[:2], np.uint8)
                for change in result.changed:
                    written[change.box.slices] |= change.where
                write_image(folder / f"{name}-{subsampling}-before.jpg", result.pixels)
                write_restored(source, folder / f"{name}-{subsampling}-after.jpg", decoded, result.pixels,
                               result.changed)
                for writer in ("before", "after"):
                    rows.append(row(name, kind, source, folder / f"{name}-{subsampling}-{writer}.jpg", written, reach))
                    rows[-1]["faces"] = result.faces
                    print(json.dumps(rows[-1]), flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
