"""Pixel formats and colour: dtype checks, grey detection, luma swap, colour transfer.

Pipeline images are HxWxC RGB(A) numpy arrays, uint8 or float32 in [0, 1].
Face crops are always uint8 RGB, like the official GPEN code.
"""
from __future__ import annotations

import cv2
import numpy as np

# ITU-R BT.601 luma, the weights OpenCV's RGB<->YUV conversion uses.
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def check_image(image: np.ndarray, name: str = "image") -> None:
    """Raise a ValueError unless `image` is HxWx3/4, uint8 or float32."""
    if not isinstance(image, np.ndarray):
        raise ValueError(f"{name} must be a numpy array, got {type(image).__name__}")
    if image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 1):
        raise ValueError(f"{name} is greyscale (shape {image.shape}); give it as HxWx3 with three equal channels "
                         "(np.dstack([grey] * 3)): faces restored in a grey photo are kept grey")
    if image.ndim != 3 or image.shape[2] not in (3, 4):
        raise ValueError(f"{name} must be HxWx3 (RGB) or HxWx4 (RGBA), got shape {image.shape}")
    if image.dtype not in (np.uint8, np.float32):
        raise ValueError(f"{name} must be uint8 or float32 in [0,1], got {image.dtype}; convert it first")
    if image.shape[0] < 1 or image.shape[1] < 1:
        raise ValueError(f"{name} is empty (shape {image.shape})")


def count_nonfinite(image: np.ndarray) -> int:
    """How many values of `image` are NaN or infinite (always 0 for integer pixels).

    One float64 sum answers the common case (none) without a full-size temporary;
    only then are the values counted, a block of rows at a time."""
    if not np.issubdtype(image.dtype, np.floating) or np.isfinite(image.sum(dtype=np.float64)):
        return 0
    rows = max(1, (1 << 20) // max(1, image[0].size))
    return int(sum(np.count_nonzero(~np.isfinite(image[y:y + rows])) for y in range(0, image.shape[0], rows)))


def check_crop(crop: np.ndarray, name: str = "crop", square: bool = True) -> np.ndarray:
    """Return `crop` as a contiguous uint8 SxSx3 RGB array (float32 [0,1] crops are rounded)."""
    if not isinstance(crop, np.ndarray) or crop.ndim != 3 or crop.shape[2] != 3 or min(crop.shape[:2]) < 1:
        shape = getattr(crop, "shape", None)
        raise ValueError(f"{name} must be an SxSx3 RGB array, got shape {shape}")
    if square and crop.shape[0] != crop.shape[1]:
        raise ValueError(f"{name} must be square, got {crop.shape[1]}x{crop.shape[0]}")
    if crop.dtype == np.uint8:
        return np.ascontiguousarray(crop)
    if crop.dtype in (np.float32, np.float64):
        return float_to_u8(crop)
    raise ValueError(f"{name} must be uint8 or float in [0,1], got {crop.dtype}")


def float_to_u8(pixels: np.ndarray) -> np.ndarray:
    """[0,1] floats -> uint8, rounded half to even, clipped."""
    return np.clip(np.rint(np.asarray(pixels, np.float32) * 255.0), 0, 255).astype(np.uint8)


def luma(rgb: np.ndarray) -> np.ndarray:
    """BT.601 luma (HxW float32) of an RGB array, in the array's own scale."""
    rgb = np.asarray(rgb, np.float32)
    # Elementwise, not a matrix product: BLAS rounds differently with the array's shape, and a pixel's
    # grey must not depend on how many pixels are converted with it.
    return rgb[..., 0] * _LUMA[0] + rgb[..., 1] * _LUMA[1] + rgb[..., 2] * _LUMA[2]


def is_grayscale(image: np.ndarray, tolerance: float = 2 / 255, fraction: float = 0.995) -> bool:
    """True when the RGB channels are equal within `tolerance` (in [0,1] units) on `fraction` of the pixels.

    The fraction keeps a few coloured specks (JPEG ringing, a coloured
    border) from turning a black-and-white photo into a colour one. Large
    images are judged on an even grid of about 250k pixels.
    """
    check_image(image)
    step = max(1, int(np.sqrt(image.shape[0] * image.shape[1] / 250_000)))
    rgb = image[::step, ::step, :3]
    if image.dtype == np.uint8:
        r, g, b = (np.ascontiguousarray(rgb[..., k]) for k in range(3))
        spread = cv2.max(cv2.max(cv2.absdiff(r, g), cv2.absdiff(g, b)), cv2.absdiff(r, b))
        limit = tolerance * 255.0 + 1e-6
    else:
        spread = rgb.max(axis=2) - rgb.min(axis=2)
        limit = tolerance + 1e-6
    return float(np.count_nonzero(spread <= limit)) >= fraction * spread.size


def gray_rgb(rgb: np.ndarray) -> np.ndarray:
    """Replace colour by its luma in all three channels (float32, same scale as the input)."""
    y = luma(rgb)
    return np.repeat(y[..., None], 3, axis=-1)


def transfer_luminance(colored: np.ndarray, luma_source: np.ndarray) -> np.ndarray:
    """Keep the colours of `colored` and the luminance of `luma_source` (both uint8 RGB).

    This is the official GPEN colorization finish: both images go to YUV, the
    colored one (resized to the source first, bilinear) takes the source's Y.
    """
    colored = _u8_rgb(colored, "colored")
    luma_source = _u8_rgb(luma_source, "luma_source")
    h, w = luma_source.shape[:2]
    if colored.shape[:2] != (h, w):
        colored = cv2.resize(colored, (w, h), interpolation=cv2.INTER_LINEAR)
    yuv = cv2.cvtColor(colored, cv2.COLOR_RGB2YUV)
    yuv[..., 0] = cv2.cvtColor(luma_source, cv2.COLOR_RGB2YUV)[..., 0]
    return cv2.cvtColor(yuv, cv2.COLOR_YUV2RGB)


def _u8_rgb(image: np.ndarray, name: str) -> np.ndarray:
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"{name} must be an HxWx3 uint8 RGB array, got "
                         f"{getattr(image, 'shape', None)} {getattr(image, 'dtype', None)}")
    return np.ascontiguousarray(image)


def match_color(restored: np.ndarray, reference: np.ndarray, weight: np.ndarray | None = None,
                sigma_fraction: float = 1 / 16) -> np.ndarray:
    """Give `restored` the low-frequency colour of `reference` (both uint8 SxSx3 RGB).

    Per channel, the restored face keeps its detail (its own high frequencies)
    and takes the reference's blurred colour: out = R + blur(O) - blur(R).
    `weight` (SxS, [0,1]) says which reference pixels are real (a crop cut by
    the image border is black outside it); the blurs are normalised by it so
    the black does not leak in.
    """
    restored = check_crop(restored, "restored")
    reference = check_crop(reference, "reference")
    if reference.shape != restored.shape:
        reference = cv2.resize(reference, restored.shape[1::-1], interpolation=cv2.INTER_LINEAR)
    size = restored.shape[0]
    w = np.ones(restored.shape[:2], np.float32) if weight is None else np.asarray(weight, np.float32)
    if w.shape != restored.shape[:2]:
        w = cv2.resize(w, restored.shape[1::-1], interpolation=cv2.INTER_LINEAR)
    sigma = max(size * sigma_fraction, 1.0)

    def low_pass(img: np.ndarray) -> np.ndarray:
        num = cv2.GaussianBlur(img.astype(np.float32) * w[..., None], (0, 0), sigma)
        den = cv2.GaussianBlur(w, (0, 0), sigma)[..., None]
        return num / np.maximum(den, 1e-6)

    out = restored.astype(np.float32) + (low_pass(reference) - low_pass(restored))
    # Where the reference has no real pixels nearby, leave the restored face alone.
    den = cv2.GaussianBlur(w, (0, 0), sigma)[..., None]
    trust = np.clip(den * 4.0, 0.0, 1.0)
    out = restored.astype(np.float32) * (1.0 - trust) + out * trust
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)
