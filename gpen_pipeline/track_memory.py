"""Steady paste masks along a clip's face tracks, carried from frame to frame.

Smoothing the alignment (smoothing.py) stops the crop from shaking, but each frame's paste mask,
from the parse map of that frame's restored face, still changes a little every frame, and a still
face flickers at its edge. So a tracked face's mask is mixed with its track's from the frame
before, exponentially (the share kept is `keep`). Masks live in crop space, which follows the
smoothed alignment: a moving face keeps its own. A face without a track (a still image) is left as
it is. Colour matching is not carried: it ties each frame's tone to that frame's own, steady
colours, and a shift carried over would bring back the restored face's own changes.

Every paste of one frame (the sharpness limit's and the identity guard's pastes again) sees the
same frame before; `next_frame()` then makes this frame's values the ones the next frame sees.
Tracks absent from a frame are forgotten.
"""
from __future__ import annotations

import torch

from .values import number_in

# Of the alignment's smoothing (TrackOptions.smoothing, 0..1), the share of the previous frame's mask
# kept: 0.5, the default, keeps 0.4, so a change is followed to 94 % within three frames.
KEEP_PER_SMOOTHING = 0.8


class TrackMemory:
    def __init__(self, keep: float):
        self.keep = number_in("keep (the share of the previous frame kept)", keep, 0.0, 0.95)
        self._before: dict[int, torch.Tensor] = {}
        self._now: dict[int, torch.Tensor] = {}

    @classmethod
    def for_smoothing(cls, smoothing: float) -> "TrackMemory":
        return cls(KEEP_PER_SMOOTHING * float(smoothing))

    def steady_mask(self, track: int | None, mask: torch.Tensor) -> torch.Tensor:
        """A track's crop-space paste mask this frame, mixed with its mask of the frame before."""
        if track is None or self.keep == 0.0:
            return mask
        before = self._before.get(track)
        if before is None or before.shape != mask.shape:
            out = mask.clone()
        else:
            out = torch.lerp(mask, before.to(device=mask.device, dtype=mask.dtype), self.keep)
        self._now[track] = out
        return out

    def next_frame(self) -> None:
        self._before, self._now = self._now, {}
