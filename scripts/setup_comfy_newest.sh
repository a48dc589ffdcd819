#!/usr/bin/env bash
# ComfyUI 0.33.0 for the server and editor tests, beside the 0.3.75 that scripts/setup_env.sh installs.
# It shares ./.venv (torch, numpy and the rest are the same); only what 0.33.0 adds or pins differently
# (tests/requirements-comfyui-0.33.txt: its frontend, templates and docs packages, torchaudio,
# comfy-kitchen, ...) goes to a folder of its own that only the 0.33.0 server puts first on its path,
# and frontend 1.58.1 to another (served with --front-end-root). The source comes from
# ../shared/comfyui, a test dependency that is never part of the project; without it this says so and
# the 0.33.0 tests are skipped. Cached under $GPEN_VENV_CACHE (default ~/.cache/comfyui-gpen) and
# linked at tests/.tmp/comfyui-0.33.0. Safe to run again: when nothing changed it only checks (< 1 s).
set -euo pipefail
cd "$(dirname "$0")/.."

SOURCE=${GPEN_COMFY_SOURCE:-../shared/comfyui/ComfyUI-0.33.0-783545f.tar.gz}
NEWEST_FRONTEND=1.58.1
LINK=tests/.tmp/comfyui-0.33.0

if [ ! -f "$SOURCE" ]; then
    echo "setup_comfy_newest: $SOURCE is absent; the tests on ComfyUI 0.33.0 will be skipped"
    rm -f "$LINK"
    exit 0
fi
if [ ! -x .venv/bin/python ]; then
    echo "setup_comfy_newest: .venv is missing; run scripts/setup_env.sh first" >&2
    exit 1
fi
KEY=$( (sha256sum "$SOURCE" | cut -d' ' -f1; cat tests/requirements-comfyui-0.33.txt scripts/setup_comfy_newest.sh) \
       | sha256sum | cut -c1-16)
CACHE=${GPEN_VENV_CACHE:-$HOME/.cache/comfyui-gpen}
DIR=$CACHE/comfyui-0.33.0-$KEY

pip_install() {
    # This machine's pip configuration names local index folders that do not all exist.
    .venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps "$@" \
        2> >(grep -v "is neither a file nor a directory" >&2)
}

if [ ! -f "$DIR/.ready" ]; then
    start=$(date +%s)
    echo "setup_comfy_newest: unpacking ComfyUI 0.33.0 and installing what it adds (about 1.1 GB)"
    mkdir -p "$CACHE"
    scratch=$(mktemp -d "$CACHE/comfyui-0.33.0-tmp.XXXXXX")
    tar xzf "$SOURCE" -C "$scratch"
    # --no-deps: every package is pinned in the file, resolved once against the test venv.
    pip_install --target "$scratch/site" -r tests/requirements-comfyui-0.33.txt
    pip_install --target "$scratch/frontend-$NEWEST_FRONTEND" "comfyui-frontend-package==$NEWEST_FRONTEND"
    touch "$scratch/.ready"
    rm -rf "$DIR"
    mv "$scratch" "$DIR"
    echo "setup_comfy_newest: ready in $(( $(date +%s) - start )) s, $(du -sh "$DIR" | cut -f1)"
fi
mkdir -p "$(dirname "$LINK")"
ln -sfn "$DIR" "$LINK"
echo "setup_comfy_newest: ComfyUI 0.33.0 with frontends 1.49.6 and $NEWEST_FRONTEND at $LINK"
