"""Auto strength: a restored face no sharper than the photo around it, times a set factor.

A sharp face pasted into a soft photo looks cut out of another picture however well its edge is
blended. Sharpness here is the band-pass energy of the luma (the difference of Gaussian blurs of
sigma 0.7 and 2 pixels: detail and edges, not flat colour), taken block by block (blocks of a
sixteenth of the face) and summed up by its upper quartile, so that a face or surroundings with a
few sharp parts among flat ones (hair against a plain wall, bokeh behind a sharp head) count by
their sharp parts.

For each face, the surroundings are the photo as it was around the face's box (to half the face's
size on each side); the face is the part of its box pasted at half weight or more. The
sharpness allowed is `limit` times the sharper of the surroundings and the face as it was, so a
face that was already sharper than a soft background keeps room for `limit` times its own detail.
The paste at the strength asked is linear in the strength (the mask, or the official crop mix,
scales with it), so the face's band-pass at strength t x asked is before + t x (after - before):
each block's energy is a quadratic in t, and the highest t whose quartile stays within the allowed
sharpness is read off a fine grid without pasting again.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .color import gaussian_blur, luma
from .face import Face

QUARTILE = 0.75
STEPS = 128  # strength found to 1/128 of the one asked, as the identity guard finds it
MIN_BLOCKS = 4  # blocks needed on each side to judge; fewer and the face keeps its strength
_SIGMAS = (0.7, 2.0)
_AROUND = 0.5  # surroundings reach this fraction of the face's size beyond its box


def limited_strengths(before: torch.Tensor, after: torch.Tensor, mask: torch.Tensor, faces: Sequence[Face],
                      asked: Sequence[float], limit: float) -> list[float]:
    """Per face, the highest strength up to the one asked (`asked`, one per face; `after` is `before`
    with every face pasted at it, `mask` the paste weight) at which the face is at most `limit` times
    as sharp as its surroundings (module docstring). before/after: HxWx3/4 images, uint8 or float;
    mask: HxW; faces: in their pixels."""
    scale = 255.0 if before.dtype == torch.uint8 else 1.0
    strengths = []
    for face, strength in zip(faces, asked):
        fraction = 1.0 if strength <= 0 else _highest_fraction(before, after, mask, face, limit, scale)
        strengths.append(float(strength) * fraction)
    return strengths


def _highest_fraction(before: torch.Tensor, after: torch.Tensor, mask: torch.Tensor, face: Face, limit: float,
                      scale: float) -> float:
    """The highest fraction t of the strength asked at which the face stays within `limit`."""
    h, w = mask.shape
    x0, y0, x1, y1 = (float(v) for v in face.box)
    size = max(x1 - x0, y1 - y0)
    if not np.isfinite(size) or size <= 0:
        return 1.0
    reach = _AROUND * size
    rx0, ry0 = max(0, int(np.floor(x0 - reach))), max(0, int(np.floor(y0 - reach)))
    rx1, ry1 = min(w, int(np.ceil(x1 + reach))), min(h, int(np.ceil(y1 + reach)))
    block = max(2, int(round(size / 16)))
    if min(rx1 - rx0, ry1 - ry0) < max(4 * block, 20):  # too small to judge (and to blur)
        return 1.0
    region = (slice(ry0, ry1), slice(rx0, rx1))
    was = _band_pass(luma(before[region][..., :3]) * (255.0 / scale))
    change = _band_pass(luma(after[region][..., :3]) * (255.0 / scale)) - was
    weight = mask[region].float()
    in_box = torch.zeros_like(weight)
    in_box[max(0, int(y0) - ry0):max(0, int(np.ceil(y1)) - ry0),
           max(0, int(x0) - rx0):max(0, int(np.ceil(x1)) - rx0)] = 1.0
    on_face = in_box * (weight >= 0.5)
    around = 1.0 - in_box  # the photo as it was around the face, wherever the paste reaches
    # Per block: pixels counted, and the sums of was^2, was*change and change^2 over them.
    face_sums = _block_sums(torch.stack([on_face, was * was * on_face, was * change * on_face,
                                         change * change * on_face]), block)
    ring_sums = _block_sums(torch.stack([around, was * was * around]), block)
    enough = block * block / 2
    face_sums = face_sums[:, face_sums[0] >= enough]
    ring_sums = ring_sums[:, ring_sums[0] >= enough]
    if face_sums.shape[1] < MIN_BLOCKS or ring_sums.shape[1] < MIN_BLOCKS:
        return 1.0
    count, a2, ad, d2 = face_sums.double()
    surroundings = torch.quantile((ring_sums[1].double() / ring_sums[0]).sqrt(), QUARTILE)
    own = torch.quantile((a2 / count).sqrt(), QUARTILE)
    allowed = limit * torch.maximum(surroundings, own)
    t = torch.linspace(0.0, 1.0, STEPS + 1, dtype=torch.float64, device=count.device)[:, None]
    energy = ((a2 + 2.0 * t * ad + t * t * d2) / count).clamp_min(0.0)
    sharpness = torch.quantile(energy.sqrt(), QUARTILE, dim=1)
    over = torch.nonzero(sharpness > allowed * (1.0 + 1e-9))
    if not len(over):
        return 1.0
    # The grid's last fraction before the first one over the limit (0 itself is never over).
    return float(t[max(int(over[0, 0]) - 1, 0), 0])


def _band_pass(plane: torch.Tensor) -> torch.Tensor:
    """Detail between the two blurs of _SIGMAS, of an HxW plane."""
    fine, coarse = (gaussian_blur(plane[None].float(), sigma)[0] for sigma in _SIGMAS)
    return fine - coarse


def _block_sums(planes: torch.Tensor, block: int) -> torch.Tensor:
    """(C, blocks) sums of (C,H,W) planes over block x block tiles (a partial tile at the far edges)."""
    sums = F.avg_pool2d(planes[None], block, stride=block, ceil_mode=True, divisor_override=1)[0]
    return sums.flatten(1)
