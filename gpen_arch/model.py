"""`GPENModel`: a loaded GPEN and everything a caller needs to know about it, in one object."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch

from . import cpu_forward
from .config import RELEASED, GPENConfig, task_hint
from .network import GPEN
from .onnx_model import OnnxGPEN

# The precisions a torch GPEN runs in, by name, fp32 first.
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
PRECISIONS = {dtype: name for name, dtype in DTYPES.items()}


@dataclass(frozen=True, eq=False)
class GPENModel:
    """A GPEN ready to run: (B, 3, S, S) RGB in [-1, 1] -> restored (B, 3, S, S), unclamped.

    `network` is what runs: a torch `GPEN` module (a host such as ComfyUI may move it between
    devices: device and dtype are read from it each time), an `OnnxGPEN` session, or any
    callable with that contract (a test's stand-in). Size and config come from the file's
    tensors, never from its name; only the task does, since the three 1024 px releases share
    one layout.
    """
    network: torch.nn.Module | OnnxGPEN | Callable[[torch.Tensor], torch.Tensor] = field(repr=False)
    size: int
    config: GPENConfig | None  # None for an ONNX file whose tensors were renamed
    task: str = "restore"  # "restore", "colorize", "inpaint" or "seg2face"
    source: str | None = None  # the file it was read from

    @classmethod
    def of(cls, network, source: str | None = None, task: str | None = None) -> "GPENModel":
        """The descriptor of a torch GPEN or an OnnxGPEN; the task from `task`, else the file name."""
        if task is None:
            task = task_hint(Path(source).name) if source else "restore"
        return cls(network, int(network.size), network.config, task, source)

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        # Inference only: without autograd the CPU forward runs in its workspace (network.GPEN),
        # whatever the caller's grad mode.
        with torch.inference_mode():
            return self.network(batch)

    @property
    def backend(self) -> str:
        return "onnx" if isinstance(self.network, OnnxGPEN) else "torch"

    @property
    def device(self) -> torch.device:
        """Where the network runs now."""
        if isinstance(self.network, OnnxGPEN):
            return torch.device("cuda" if self.network.on_cuda else "cpu")
        param = self._parameter()
        return param.device if param is not None else torch.device("cpu")

    @property
    def dtype(self) -> torch.dtype:
        """What the network computes in (an ONNX file: what its input is declared as)."""
        if isinstance(self.network, OnnxGPEN):
            return torch.float16 if self.network.input_dtype.__name__ == "float16" else torch.float32
        param = self._parameter()
        return param.dtype if param is not None and param.is_floating_point() else torch.float32

    def _parameter(self) -> torch.Tensor | None:
        """A weight of a torch network (a stand-in network without weights has none)."""
        return next(self.network.parameters(), None) if isinstance(self.network, torch.nn.Module) else None

    @property
    def precision(self) -> str:
        return PRECISIONS.get(self.dtype, str(self.dtype))

    @property
    def precisions(self) -> tuple[str, ...]:
        """What this model can run in: a torch GPEN is cast to any of them when loaded; an ONNX file runs
        in what it was exported in."""
        return (self.precision,) if self.backend == "onnx" else tuple(PRECISIONS.values())

    @property
    def one_face_per_call(self) -> bool:
        """A torch GPEN on the CPU runs a batch one face at a time (its convolutions are compute-bound
        there), so more faces per call only hold more memory."""
        return self.backend == "torch" and self.device.type == "cpu"

    def working_bytes(self, faces: int = 1) -> int:
        """Memory a forward over `faces` faces needs besides the weights, from the forward's own plan
        of one face's activations (the CPU workspace); the CPU runs one face at a time."""
        config = self.config or RELEASED.get(f"GPEN-BFR-{self.size}") or GPENConfig(self.size)
        at_once = 1 if self.one_face_per_call else max(1, int(faces))
        itemsize = torch.empty((), dtype=self.dtype).element_size()
        return at_once * cpu_forward.plan_for(config).numel * itemsize

    def release_workspace(self) -> None:
        """Free the memory the network keeps between calls (a torch GPEN's CPU workspace)."""
        if isinstance(self.network, GPEN):
            self.network.release_workspace()
