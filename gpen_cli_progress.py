"""What the command line shows while it restores: on a terminal, one progress line naming the
image, its stage and its faces; nothing when the output goes to a file or a pipe. Notes and
results are written above that line (`say`), so it is never broken by them.
"""
from __future__ import annotations

import sys
from typing import Callable, Iterator, Sequence, TypeVar

Item = TypeVar("Item")
# Bars still open when a command stops (an error mid-run): `close_all` clears them before the error.
_OPEN: list["RestoreProgress"] = []


def say(message: str, file=None) -> None:
    """Print a line (to stderr unless told) above any progress line on the terminal."""
    from tqdm import tqdm

    tqdm.write(message, file=file or sys.stderr)


def close_all() -> None:
    for progress in list(_OPEN):
        progress.close()


class RestoreProgress:
    """A bar over the images, advanced within each image by `enhance_image`'s steps: the
    detection, each face restored, the paste (see enhance.enhance_images)."""

    def __init__(self, stage: str = ""):
        from tqdm import tqdm

        # disable=None: only on a terminal; leave=False: the bar goes before the result line.
        self._bar = tqdm(total=1, desc=stage, disable=None, leave=False, file=sys.stderr, dynamic_ncols=True,
                         bar_format="{desc} |{bar}| {elapsed}<{remaining}")
        self._index, self._label = 0, ""
        _OPEN.append(self)

    def stage(self, text: str) -> None:
        """Show what is being done now (loading the model, ...)."""
        self._bar.set_description_str(f"{self._label}{text}")

    def over(self, items: Sequence[Item], name_of: Callable[[Item], str]) -> Iterator[Item]:
        """Each item in turn (an image to restore), the bar showing which one by `name_of(item)`."""
        self._bar.total = len(items)
        for self._index, item in enumerate(items):
            self._move_to(self._index)
            count = f"[{self._index + 1}/{len(items)}] " if len(items) > 1 else ""
            self._label = f"{count}{name_of(item)}: "
            self.stage("finding faces")
            yield item
        self._move_to(len(items))

    def steps(self, done: int, total: int) -> None:
        """enhance_images' progress: one step for the detection, one per face, one for the paste."""
        faces = total - 2
        if done <= faces:
            self.stage(f"restoring face {done} of {faces}")
        elif done == faces + 1:
            self.stage(f"pasting {faces} face(s) back" if faces else "no face found")
        else:
            self.stage("writing")
        self._move_to(self._index + done / total)

    def _move_to(self, position: float) -> None:
        self._bar.update(position - self._bar.n)

    def close(self) -> None:
        if self in _OPEN:
            _OPEN.remove(self)
            self._bar.close()
