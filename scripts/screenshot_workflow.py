"""Screenshot an example workflow in the real ComfyUI frontend, for the README and as the
template thumbnail ComfyUI shows next to a same-name .json.

    .venv/bin/python scripts/screenshot_workflow.py [example_workflows/NAME.json]

Starts the vendored ComfyUI (tests/comfy/comfy_harness.py) on a scratch base folder with a face
photo as example.png, opens it in headless Chromium (scripts/setup_browser.sh), loads the
workflow, fits the view and writes docs/<NAME>.png and example_workflows/<NAME>.jpg.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "comfy"))
import comfy_harness as harness  # noqa: E402

CHROMIUM = os.environ.get("GPEN_CHROMIUM", "/usr/bin/chromium")
FLAGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]
VIEWPORT = {"width": 1400, "height": 800}

LOAD = """async ([workflow, name]) => {
  await app.loadGraphData(workflow, true, false, name);
}"""

# Fit by hand: the frontend's own fit command keeps its old zoom until the canvas has been drawn.
FIT = """() => {
  const nodes = app.rootGraph.nodes;
  const left = Math.min(...nodes.map((n) => n.pos[0]));
  const top = Math.min(...nodes.map((n) => n.pos[1] - LiteGraph.NODE_TITLE_HEIGHT));
  const right = Math.max(...nodes.map((n) => n.pos[0] + n.size[0]));
  const bottom = Math.max(...nodes.map((n) => n.pos[1] + n.size[1]));
  const box = app.canvas.canvas.getBoundingClientRect();
  const margin = 40, sidebar = 60, header = 80;
  const scale = Math.min((box.width - sidebar - 2 * margin) / (right - left),
                         (box.height - header - 2 * margin) / (bottom - top));
  app.canvas.ds.scale = scale;
  app.canvas.ds.offset = [(sidebar + margin) / scale - left, (header + margin) / scale - top];
  app.rootGraph.setDirtyCanvas(true, true);
}"""



def start_server(base: Path) -> harness.ComfyServer:
    harness.make_base(base)
    settings = base / "user" / "default" / "comfy.settings.json"
    settings.parent.mkdir(parents=True, exist_ok=True)
    settings.write_text(json.dumps({"Comfy.TutorialCompleted": True, "Comfy.Minimap.Visible": False}), encoding="utf-8")
    harness.save_png(harness.face_photo(512), base / "input" / "example.png")
    return harness.ComfyServer(harness.ensure_comfy_tree(), base).start().wait_ready()


def close_banner(page) -> None:
    """The one-time "Introducing ..." banner of a fresh profile, closed like a user would."""
    banner = page.get_by_text("Introducing", exact=False)
    if banner.count():
        buttons = banner.first.locator("xpath=ancestor::div[.//button][1]").locator("button, [role=button], i, svg")
        # Its close mark, not "Try it out" (which would switch the editor to another node design).
        buttons.filter(has_not_text="Try").last.click(timeout=3000)


def screenshot(url: str, workflow: dict, name: str, png: Path) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            page = browser.new_page(viewport=VIEWPORT)
            page.goto(url)
            page.wait_for_function("() => window.app?.graph")
            page.evaluate(LOAD, [workflow, name])
            page.keyboard.press("Escape")  # the template browser, when it opens
            close_banner(page)
            page.wait_for_timeout(1500)  # the LoadImage preview arrives a little later
            page.evaluate(FIT)
            page.wait_for_timeout(500)
            png.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(png))
        finally:
            browser.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("workflow", nargs="?", type=Path,
                        default=REPO / "example_workflows" / "gpen_four_node_chain.json")
    parser.add_argument("--png", type=Path, help="default: docs/<name>.png")
    args = parser.parse_args(argv)
    name = args.workflow.stem.removeprefix("gpen_")
    png = args.png or REPO / "docs" / f"{name}.png"
    jpg = args.workflow.with_suffix(".jpg")
    workflow = json.loads(args.workflow.read_text(encoding="utf-8"))
    with tempfile.TemporaryDirectory(prefix="gpen-shot-", dir=harness.TMP) as scratch:
        server = start_server(Path(scratch))
        try:
            screenshot(server.url, workflow, args.workflow.stem, png)
        finally:
            server.stop()
    from PIL import Image

    with Image.open(png) as image:
        image.convert("RGB").save(jpg, quality=80, optimize=True)
    print(f"{png} ({png.stat().st_size // 1024} KB), {jpg} ({jpg.stat().st_size // 1024} KB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
