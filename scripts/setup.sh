#!/usr/bin/env bash
# Creates (or reuses) ./.venv with what running the pack needs: torch + torchvision and
# requirements.txt. Nothing for the tests (scripts/setup_env.sh adds that). Safe to run again;
# when nothing changed it only checks (< 1 s). pip's own progress lines are shown.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
# torch 2.14.1 + torchvision 0.29.1: the pair that ComfyUI and facexlib import together (see README).
TORCH=(torch==2.14.1 torchvision==0.29.1)
KEY=$(cat requirements.txt scripts/setup.sh | sha256sum | cut -c1-16)
STAMP=.gpen-runtime-$KEY

if [ -f .venv/$STAMP ]; then
    echo "setup: .venv has what the pack needs ($KEY)"
    exit 0
fi
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null; then
    echo "setup: $PYTHON is not Python 3.10 or newer; set PYTHON=/path/to/python3.x" >&2
    exit 1
fi
start=$(date +%s)
if [ ! -e .venv ]; then
    echo "setup: creating .venv with $("$PYTHON" --version)"
    "$PYTHON" -m venv .venv
fi
echo "setup: installing ${TORCH[*]} and requirements.txt: 6.4 GB on Linux, most of it the CUDA libraries"
echo "       that come with torch's wheel; about 80 s with a fast connection. pip shows each step."
# This machine's pip configuration names local index folders that do not all exist; pip warns
# about each one, which says nothing about our install.
.venv/bin/python -m pip install --disable-pip-version-check --progress-bar on "${TORCH[@]}" -r requirements.txt \
    2> >(grep -v "is neither a file nor a directory" >&2) \
    | { grep -v "^Requirement already satisfied" || true; }
rm -f .venv/.gpen-runtime-*
touch .venv/$STAMP
echo "setup: ready in $(( $(date +%s) - start )) s, .venv is $(du -shD .venv | cut -f1)"
