#!/usr/bin/env bash
# Installs what the editor (js/) tests need, tests/comfy/test_frontend.py: Debian's Chromium and the
# Python Playwright package in ./.venv. Safe to run again; when both are there it only checks (< 1 s).
# Run it after scripts/setup_env.sh (the venv must exist).
set -euo pipefail
cd "$(dirname "$0")/.."

CHROMIUM=${GPEN_CHROMIUM:-/usr/bin/chromium}
PLAYWRIGHT=playwright==1.65.2  # drives the system Chromium; its own browser download is never used
PY=.venv/bin/python

if [ ! -x "$PY" ]; then
    echo "setup_browser: $PY is missing; run scripts/setup_env.sh first" >&2
    exit 1
fi

installed=0
if [ ! -x "$CHROMIUM" ]; then
    if [ "$CHROMIUM" != /usr/bin/chromium ]; then
        echo "setup_browser: GPEN_CHROMIUM=$CHROMIUM does not exist" >&2
        exit 1
    fi
    SUDO=""
    if [ "$(id -u)" != 0 ]; then
        command -v sudo >/dev/null || { echo "setup_browser: installing chromium needs root (apt-get)" >&2; exit 1; }
        SUDO="sudo -n"
    fi
    echo "setup_browser: installing chromium with apt-get (about a minute)"
    start=$(date +%s)
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
    echo "setup_browser: chromium installed in $(( $(date +%s) - start )) s"
    installed=1
fi

if ! "$PY" -c "import playwright.sync_api" 2>/dev/null; then
    echo "setup_browser: installing $PLAYWRIGHT into .venv"
    # This machine's pip configuration names local index folders that do not all exist.
    "$PY" -m pip install --quiet --disable-pip-version-check "$PLAYWRIGHT" \
        2> >(grep -v "is neither a file nor a directory" >&2)
    installed=1
fi

if [ "$installed" = 1 ]; then
    # Prove the pair works: headless Chromium started by Playwright renders a page.
    GPEN_CHROMIUM=$CHROMIUM "$PY" - <<'EOF'
import os
from playwright.sync_api import sync_playwright

with sync_playwright() as p:
    browser = p.chromium.launch(executable_path=os.environ["GPEN_CHROMIUM"],
                                args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
    page = browser.new_page()
    page.set_content("<p id='x'>ok</p>")
    assert page.inner_text("#x") == "ok"
    print(f"setup_browser: Chromium {browser.version} runs under Playwright")
    browser.close()
EOF
fi
echo "setup_browser: ready ($("$CHROMIUM" --version 2>/dev/null | head -1))"
