"""Pixel formats and colour: dtype checks, grey detection, luma, colour transfer.

Pipeline images are HxWxC RGB(A), uint8 or float32 in [0, 1]: numpy arrays on
the way in and out, torch tensors where faces are cut and pasted. Crops are
uint8 RGB arrays, or (3,S,S) tensors on whole grey levels.
"""
from __future__ import annotations

import math

import cv2
import numpy as np
import torch
import torch.nn.functional as F

# ITU-R BT.601 luma, the weights OpenCV's RGB<->YUV conversion uses.
LUMA_WEIGHTS = (0.299, 0.587, 0.114)

_PIXEL_DTYPES = (np.uint8, np.float32, torch.uint8, torch.float32)


def check_image(image: np.ndarray | torch.Tensor, name: str = "image") -> None:
    """Raise a ValueError unless `image` is an HxWx3/4 numpy array or tensor, uint8 or float32."""
    if not isinstance(image, (np.ndarray, torch.Tensor)):
        raise ValueError(f"{name} must be a numpy array or torch tensor, got {type(image).__name__}")
    shape = tuple(image.shape)
    if image.ndim == 2 or (image.ndim == 3 and shape[2] == 1):
        raise ValueError(f"{name} is greyscale (shape {shape}); give it as HxWx3 with three equal channels "
                         "(np.dstack([grey] * 3)): faces restored in a grey photo are kept grey")
    if image.ndim != 3 or shape[2] not in (3, 4):
        raise ValueError(f"{name} must be HxWx3 (RGB) or HxWx4 (RGBA), got shape {shape}")
    if image.dtype not in _PIXEL_DTYPES:
        raise ValueError(f"{name} must be uint8 or float32 in [0,1], got {image.dtype}; convert it first")
    if shape[0] < 1 or shape[1] < 1:
        raise ValueError(f"{name} is empty (shape {shape})")


def count_nonfinite(image: np.ndarray | torch.Tensor) -> int:
    """How many values of `image` (a numpy array or a tensor) are NaN or infinite (always 0 for integer pixels).

    One float64 sum answers the common case (none) without a full-size temporary;
    only then are the values counted, a block of rows at a time."""
    if isinstance(image, torch.Tensor):
        if image.device.type != "cpu":
            return int((~torch.isfinite(image)).sum()) if image.is_floating_point() else 0
        image = image.detach().numpy()
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


def luma(rgb: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
    """BT.601 luma (float32, channel axis dropped) of RGB in the last axis, in the pixels' own scale.

    Takes a numpy array or a tensor and returns the same kind."""
    rgb = rgb.float() if isinstance(rgb, torch.Tensor) else np.asarray(rgb, np.float32)
    r, g, b = LUMA_WEIGHTS
    # Elementwise, not a matrix product: BLAS rounds differently with the array's shape, and a pixel's
    # grey must not depend on how many pixels are converted with it.
    return rgb[..., 0] * r + rgb[..., 1] * g + rgb[..., 2] * b


def is_grayscale(image: np.ndarray | torch.Tensor, tolerance: float = 2 / 255, fraction: float = 0.995) -> bool:
    """True when the RGB channels are equal within `tolerance` (in [0,1] units) on `fraction` of the pixels.

    The fraction keeps a few coloured specks (JPEG ringing, a coloured
    border) from turning a black-and-white photo into a colour one. Large
    images are judged on an even grid of about 250k pixels. `image`: an
    HxWx3/4 numpy array or tensor (judged where it is).
    """
    check_image(image)
    step = max(1, int(np.sqrt(image.shape[0] * image.shape[1] / 250_000)))
    rgb = image[::step, ::step, :3]
    if isinstance(rgb, np.ndarray):
        rgb = torch.from_numpy(np.ascontiguousarray(rgb))  # a copy of the grid only
    r, g, b = rgb.unbind(dim=2)
    # Elementwise over the three planes: a reduction over a last axis of 3 is several times slower.
    spread = torch.maximum(torch.maximum(r, g), b) - torch.minimum(torch.minimum(r, g), b)  # uint8: max >= min
    limit = tolerance * (255.0 if rgb.dtype == torch.uint8 else 1.0) + 1e-6
    return int(torch.count_nonzero(spread <= limit)) >= fraction * spread.numel()


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


def gaussian_blur(planes: torch.Tensor, sigma: float) -> torch.Tensor:
    """(C,H,W) float32 planes blurred as cv2.GaussianBlur(plane, (0, 0), sigma) blurs float32.

    The same kernel (cv2's size for float images: 8 sigma + 1, made odd; the
    weights normalised in float64) and border (reflect-101), applied separably.
    """
    ksize = int(math.floor(sigma * 8.0 + 1.5)) | 1
    radius = ksize // 2
    channels, h, w = planes.shape
    if radius >= min(h, w):
        raise ValueError(f"cannot blur {h}x{w} planes with sigma {sigma}: the kernel must fit in the planes "
                         "(the border is reflected); use a smaller sigma")
    taps = torch.arange(ksize, dtype=torch.float64) - radius
    kernel = torch.exp(-taps * taps / (2.0 * sigma * sigma))
    kernel = (kernel / kernel.sum()).to(device=planes.device, dtype=planes.dtype)
    x = F.pad(planes[None], (radius, radius, radius, radius), mode="reflect")  # torch's reflect is cv2's 101
    x = F.conv2d(x, kernel.view(1, 1, 1, ksize).expand(channels, 1, 1, ksize), groups=channels)
    return F.conv2d(x, kernel.view(1, 1, ksize, 1).expand(channels, 1, ksize, 1), groups=channels)[0]


def match_color(restored: torch.Tensor, reference: torch.Tensor, weight: torch.Tensor | None = None,
                sigma_fraction: float = 1 / 16) -> torch.Tensor:
    """Give `restored` the low-frequency colour of `reference`; both (3,S,S) float grey levels 0..255.

    Per channel, the restored face keeps its detail (its own high frequencies)
    and takes the reference's blurred colour: out = R + blur(O) - blur(R),
    blurred with sigma S * `sigma_fraction`. `weight` (SxS, [0,1]) says which
    pixels to judge the colour on (the skin; and a crop cut by the image
    border is black outside it): the blurs are normalised by it so nothing
    else leaks in, and where no weighted pixel is near, the face takes their
    mean shift. Returns whole grey levels, clipped to 0..255.
    """
    if restored.ndim != 3 or restored.shape[0] != 3 or reference.shape != restored.shape:
        raise ValueError(f"restored and reference must both be (3,S,S), got {tuple(restored.shape)} "
                         f"and {tuple(reference.shape)}")
    sigma = max(restored.shape[-1] * sigma_fraction, 1.0)
    # The blur is linear: blur(O*w) - blur(R*w) is one blur of the difference, three planes instead of six.
    if weight is None:
        out = restored + gaussian_blur(reference - restored, sigma)
    else:
        weight = weight.to(restored)[None]
        blurred = gaussian_blur(torch.cat([(reference - restored) * weight, weight]), sigma)
        shift, density = blurred[:3], blurred[3:]
        trust = (density * 4.0).clamp_(0.0, 1.0)
        overall = ((reference - restored) * weight).sum((1, 2), keepdim=True) / weight.sum().clamp_min(1e-6)
        out = restored + torch.lerp(overall, shift / density.clamp_min(1e-6), trust)
    return out.round_().clamp_(0.0, 255.0)
