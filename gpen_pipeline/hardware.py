"""What the machine's processors do quickly, read from the machine itself."""
from __future__ import annotations

from pathlib import Path

import torch


def cpu_flags() -> set[str]:
    """The CPU's feature flags as Linux lists them; empty elsewhere (read as "not known to have")."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return set()
    line = next((line for line in text.splitlines() if line.startswith(("flags", "Features"))), "")
    return set(line.partition(":")[2].split())


def fast_bf16(device: str | torch.device) -> bool:
    """Whether bfloat16 convolutions are known to run several times faster than float32 on
    `device`: a CPU with AMX. AVX512-BF16 alone is not enough: with AMX switched off
    (ONEDNN_MAX_CPU_ISA=AVX512_CORE_BF16) the face parser ran 1.45x slower in bf16 than in fp32.
    On a CUDA GPU float32 convolutions already run on TF32 tensor cores, and none has been
    measured here: no."""
    return torch.device(device).type == "cpu" and "amx_bf16" in cpu_flags()
