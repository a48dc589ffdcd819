"""What the example workflows read, made here: the face photo, a grey copy for colorizing, a copy with
transparent damage for inpainting, and a short clip with a face drifting across. Shared by the
workflow tests (tests/comfy/test_comfy_workflows.py) and the thumbnail script
(scripts/screenshot_workflow.py), which also installs the small test model under the names a
workflow asks for."""
from __future__ import annotations

from pathlib import Path

import numpy as np

import comfy_harness as harness

DAMAGE = (0.36, 0.18, 0.52, 0.30)  # over the astronaut's eyes, as fractions of the image
CLIP_SIZE = (160, 96)  # width, height
CLIP_FRAMES = 12
CLIP_GREY = 90


def grey_photo(photo: np.ndarray) -> np.ndarray:
    """An old black-and-white print of `photo`: one luma value in all three channels."""
    luma = np.rint(photo @ np.array([0.299, 0.587, 0.114])).astype(np.uint8)
    return np.repeat(luma[..., None], 3, axis=-1)


def clip_frames(face: np.ndarray, frames: int = CLIP_FRAMES) -> list[np.ndarray]:
    """Grey frames with `face` (height x height RGB) moving 2 px to the right per frame."""
    width, height = CLIP_SIZE
    out = []
    for index in range(frames):
        rgb = np.full((height, width, 3), CLIP_GREY, np.uint8)
        rgb[:, 20 + 2 * index: 20 + height + 2 * index] = face
        out.append(rgb)
    return out


def write_clip(path: Path, frames: list[np.ndarray], rate: int = 12) -> Path:
    """`frames` as a lossless H.264 .mp4 (PyAV), the kind of file Load Video reads."""
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=rate, options={"qp": "0"})
        stream.height, stream.width = frames[0].shape[:2]
        stream.pix_fmt = "yuv420p"
        for index, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts = index
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


def clip_face(astronaut: np.ndarray) -> np.ndarray:
    """The astronaut's head, cut from the 512 px photo and scaled to the clip's height."""
    import cv2

    height = CLIP_SIZE[1]
    return cv2.resize(astronaut[0:400, 60:460], (height, height), interpolation=cv2.INTER_AREA)


def task_of(workflow: dict) -> str:
    """restore, colorize or inpaint: what the workflow's model file is named for."""
    names = " ".join(harness.model_names(workflow))
    return "colorize" if "Colorization" in names else "inpaint" if "Inpainting" in names else "restore"


def put_inputs(folder: Path, workflow: dict, size: int) -> list[Path]:
    """Under the names the workflow's Load Image / Load Video nodes read: a photo fitting its task
    (`size` px square) or a clip."""
    photo = harness.face_photo(size)
    image = {"restore": photo, "colorize": grey_photo(photo), "inpaint": harness.with_damage(photo, DAMAGE)}
    written = []
    for node in workflow["nodes"]:
        name = (node.get("widgets_values") or [None])[0]
        if node["type"] == "LoadImage":
            written.append(harness.save_png(image[task_of(workflow)], folder / name))
        elif node["type"] == "LoadVideo":
            written.append(write_clip(folder / name, clip_frames(clip_face(harness.face_photo(512)))))
    return written
