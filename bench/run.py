"""Every benchmark in one command, each in a fresh process (so one's memory peak is not another's).

    .venv/bin/python bench/run.py            # network (512/1024/2048), pipeline (48 frames), precision on a GPU,
                                             # the command line's memory on an 8000x8000 16-bit RGBA file,
                                             # what its JPEG output keeps (photo files),
                                             # identity (ArcFace-R50 beside GPEN-512), seams,
                                             # cold start, contention (beside another job),
                                             # the whole job against the ReActor-style glue,
                                             # video (stability, lag, memory),
                                             # the face parser (speed; masks parsed in bf16 and at 256 against fp32 at 512)
    .venv/bin/python bench/run.py --quick    # fewer repeats, BFR-512 only, 12 frames, 4000x4000: minutes on 2 cores

Results go to bench/results/*.json; each script's own --help lists its options.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    repeats = ["--repeats", "3"] if args.quick else []
    runs = [
        ["network.py", *repeats, *(["--rss-sizes"] if args.quick else ["--sizes", "512", "1024", "2048"])],
        ["pipeline.py", *repeats, "--frames", "12" if args.quick else "48"],
        ["precision.py", *repeats],
        ["file_memory.py", "--side", "4000" if args.quick else "8000",
         "--json", str(BENCH / "results" / "file_memory.json")],
        ["photo_files.py", "--json", str(BENCH / "results" / "photo_files.json")],
        ["identity.py", *repeats],
        ["seams.py"],
        ["cold_start.py"],
        ["contention.py", *repeats],
        ["contention.py", *repeats, "--other", "busy"],
        ["whole_job.py", *repeats],
        ["parser.py", *repeats],
        ["parser_masks.py"],
        ["video.py", *(["--memory-frames", "50"] if args.quick else [])],
    ]
    failed = []
    for script, *options in runs:
        print(f"\n== {script} {' '.join(options)}", flush=True)
        if subprocess.run([sys.executable, str(BENCH / script), *options]).returncode != 0:
            failed.append(script)
    if failed:
        sys.exit(f"failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
