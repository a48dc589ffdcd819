"""Files in and out of the command line, as an unlucky day hands them over: a full disk.

Every file the pack writes goes to a temporary name beside its target and is renamed into place
only when complete (gpen_arch.files): a failed write keeps the previous file, leaves nothing
behind and says why in one sentence; a file that exists is complete, so a rerun skips it.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

import robustness_support as support
from fixture_files import S256_MODEL_FILE

ROOT = support.ROOT


def save(path: Path, rgb: np.ndarray) -> Path:
    cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR) if rgb.ndim == 3 else rgb)
    return path


def leftovers(folder: Path) -> list[str]:
    """Temporary files a write left behind."""
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


# --------------------------------------------------------------------------- a full disk


def test_convert_onto_a_full_disk_keeps_the_previous_file_and_says_so(small_disk):
    previous = b"an earlier conversion" * 100
    (small_disk / "small.safetensors").write_bytes(previous)
    done = support.run_cli("convert", S256_MODEL_FILE, "-o", small_disk / "small.safetensors")
    support.assert_cli_error(done, "cannot write", "small.safetensors", "the disk is full")
    assert "SafetensorError" not in done.stderr
    assert (small_disk / "small.safetensors").read_bytes() == previous
    assert leftovers(small_disk) == []


def test_a_json_report_onto_a_full_disk_is_one_line_and_exit_1(small_disk, tmp_path):
    source = save(tmp_path / "astronaut.png", support.astronaut())
    with pytest.raises(OSError), open(small_disk / "filler", "wb") as filler:
        filler.write(b"\0" * (1 << 20))
    with open(small_disk / "faces.json", "wb") as report:
        done = subprocess.run([sys.executable, str(ROOT / "gpen_cli.py"), "detect", str(source), "--json"],
                              stdout=report, stderr=subprocess.PIPE, text=True, env=support.clean_env(), cwd=ROOT,
                              timeout=120)
    support.assert_cli_error(done, "cannot write the standard output", "the disk is full")


@pytest.mark.parametrize("writer", ["safetensors"])
def test_a_write_that_runs_out_of_space_keeps_the_previous_file(disk_fills_up, s64_model, tmp_path, writer):
    from gpen_arch import save_safetensors
    from gpen_arch.files import WriteError

    target = tmp_path / "out.safetensors"
    target.write_bytes(b"the previous, good file")
    disk_fills_up(4096)  # some of the new file fits, as on a real disk
    with pytest.raises(WriteError) as info:
        save_safetensors(s64_model, target)
    assert str(info.value) == (f"cannot write {target}: the disk is full; the previous {target.name} is unchanged; "
                               "free some space and run again")
    assert target.read_bytes() == b"the previous, good file"
    assert leftovers(tmp_path) == []
