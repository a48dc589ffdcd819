"""How a warped face is mixed into its box of the photo, and the photo's grain given to it.

A feathered blend mixes every detail over the whole soft edge of the mask, so a
clean face and a grainy photo overlap as two half-transparent textures there.
The multi-band blend splits the difference between face and photo into coarse,
middle and fine bands: the coarse one (tone and colour) crosses over the whole
soft edge, finer ones over narrower strips in its middle, so detail switches
quickly while the tone still fades slowly. Every band's weight is zero where
the mask is, so pixels outside the mask stay untouched.

All on (3,h,w) float planes on the image's device, in the photo's own scale
(grey levels for uint8 photos, [0,1] for float ones).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .color import gaussian_blur
from .names import BLENDS

# Band edges as fractions of the face's size in the photo: detail finer than 1 % of the face, the
# middle band up to 4 %, tone and colour above that.
_FINE_SIGMA, _COARSE_SIGMA = 0.01, 0.04
# How much narrower the middle and fine bands' crossings are than the mask's soft edge.
_NARROWING = (2.0, 4.0)


def mix(base: torch.Tensor, face: torch.Tensor, weight: torch.Tensor, blend: str, face_px: float) -> torch.Tensor:
    """base*(1-weight) + face*weight, feathered or by bands, as (3,h,w) float32; `base` is used up
    (a feathered result is written into it).

    base, face: (3,h,w) (face may be (h,w), one grey for all channels); weight: (h,w) in [0,1];
    face_px: the face's size in the photo, which sets the bands."""
    if blend == "feather":
        return torch.lerp(base, face, weight, out=base)  # a zero weight gives back the photo's own value
    if blend != "multiband":
        raise ValueError(f"unknown blend {blend!r}; choose one of {', '.join(BLENDS)}")
    difference = face - base
    fine = _lowpass(difference, _FINE_SIGMA * face_px)
    coarse = _lowpass(difference, _COARSE_SIGMA * face_px)
    middle_weight, fine_weight = (_narrowed(weight, factor) for factor in _NARROWING)
    out = base + coarse * weight
    out.addcmul_(fine - coarse, middle_weight)
    return out.addcmul_(difference - fine, fine_weight)


def _narrowed(weight: torch.Tensor, factor: float) -> torch.Tensor:
    """The same crossing `factor` times steeper about its middle; still 0 wherever `weight` is."""
    return ((weight - 0.5) * factor + 0.5).clamp_(0.0, 1.0)


def _lowpass(planes: torch.Tensor, sigma: float) -> torch.Tensor:
    """A Gaussian-like low-pass of (3,h,w) planes. Wide ones run on a shrunk copy (a box average,
    blurred, stretched back bilinearly): a blend needs the band, not cv2's exact kernel."""
    h, w = planes.shape[-2:]
    sigma = min(max(sigma, 0.5), (min(h, w) - 2) / 8.0)
    if sigma < 0.5:
        return planes.clone()  # a box too small to have bands
    shrink = max(1, int(sigma // 2))
    if shrink == 1:
        return gaussian_blur(planes, sigma)
    small = F.avg_pool2d(planes[None], shrink, ceil_mode=True)[0]
    small_sigma = math.sqrt(max(sigma * sigma - shrink * shrink / 12.0, 0.25)) / shrink
    small_sigma = min(small_sigma, (min(small.shape[-2:]) - 2) / 8.0)
    if small_sigma >= 0.5:
        small = gaussian_blur(small, small_sigma)
    return F.interpolate(small[None], size=(h, w), mode="bilinear", align_corners=False)[0]


def noise_level(planes: torch.Tensor, where: torch.Tensor) -> torch.Tensor:
    """Per channel, the standard deviation of white noise that would explain the fine texture of
    (3,h,w) `planes` at the pixels `where` is set: the median absolute 3x3 high-pass, scaled so that
    pure white noise of deviation s reads s (robust to the few edges a region holds)."""
    padded = F.pad(planes[None], (1, 1, 1, 1), mode="replicate")[0]
    kernel = torch.tensor([1.0, 2.0, 1.0], device=planes.device) / 4.0
    rows = padded[:, :-2] * kernel[0] + padded[:, 1:-1] * kernel[1] + padded[:, 2:] * kernel[2]
    smooth = rows[..., :-2] * kernel[0] + rows[..., 1:-1] * kernel[1] + rows[..., 2:] * kernel[2]
    high = (planes - smooth).abs()[:, where]
    if high.shape[1] < 64:
        return torch.zeros(planes.shape[0], device=planes.device)
    # 1.4826 * MAD is a Gaussian's deviation; the high-pass keeps 0.8004 of white noise's deviation
    # ((12/16)^2 + 4 (2/16)^2 + 4 (1/16)^2 = 0.6406 of its variance).
    return high.median(dim=1).values * (1.4826 / 0.8004)


def add_grain(face: torch.Tensor, photo: torch.Tensor, weight: torch.Tensor, seed: int,
              scale: float = 255.0) -> torch.Tensor:
    """The warped face (3,h,w) with white grain added so that its fine texture reads as noisy as the
    photo's at the same place (where `weight` is high): the grain the restorer took away, put back.
    The same face and photo always get the same grain; a face at least as noisy as the photo is
    returned as it is. `scale`: 255 for grey levels, 1 for [0,1] values."""
    inside = weight >= 0.95
    if int(inside.sum()) < 64:
        return face
    wanted, has = noise_level(photo, inside), noise_level(face, inside)
    missing = (wanted * wanted - has * has).clamp_min_(0.0).sqrt_()
    if float(missing.max()) <= 0.5 / 255.0 * scale:
        return face
    generator = torch.Generator(device="cpu").manual_seed(seed)
    grain = torch.randn(face.shape, generator=generator).to(face.device)
    return face + grain * missing[:, None, None]
