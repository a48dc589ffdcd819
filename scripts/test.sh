#!/usr/bin/env bash
# The test command (README "Run the tests"): sets up ./.venv, ComfyUI 0.33.0 beside the vendored
# 0.3.75 (when ../shared/comfyui is there) and the headless browser if needed, then runs the whole suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
bash scripts/setup_comfy_newest.sh
bash scripts/setup_browser.sh
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 DO_NOT_TRACK=1 NO_ALBUMENTATIONS_UPDATE=1
exec .venv/bin/python -m pytest -p no:cacheprovider -rs "$@" tests
