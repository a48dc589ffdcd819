"""Screenshot example workflows after a real run in the real ComfyUI frontend: the template
thumbnails ComfyUI's Templates dialog shows beside a same-name .json, and the README's picture.

    .venv/bin/python scripts/screenshot_workflow.py --all                 # every example's thumbnail
    .venv/bin/python scripts/screenshot_workflow.py "example_workflows/NAME.json" [--picture docs/x.jpg]
    options: --comfy comfy0.33.0-fe1.58.1 (another ComfyUI/frontend of tests/comfy/comfy_harness.py),
             --models DIR (real model files by the names the workflows use; else the small test model),
             --check DIR (also a full-window PNG of each workflow before and after its run, to look at)

Starts a ComfyUI (tests/comfy/comfy_harness.py) on a scratch base folder holding the inputs the
workflows read (tests/comfy/example_inputs.py: a face photo, a grey one, a damaged one, a clip) and
the models they name; opens it in headless Chromium (scripts/setup_browser.sh) at 1400x800, loads
each workflow with its own saved view, queues it from the page, waits for the run and writes
example_workflows/<NAME>.jpg: the nodes' area, at most THUMB_WIDTH wide. The small test model has
random weights, so the faces it pastes are noise: use --models with the released files for
thumbnails that show real restorations.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "comfy"))
import comfy_harness as harness  # noqa: E402
import example_inputs  # noqa: E402

CHROMIUM = os.environ.get("GPEN_CHROMIUM", "/usr/bin/chromium")
FLAGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]
VIEWPORT = {"width": 1400, "height": 800}
PHOTO_SIZE = 512
THUMB_WIDTH = 640
RUN_TIMEOUT_S = 600

# As the Templates dialog and a dropped file load one: with its saved view (extra.ds).
LOAD = """async ([workflow, name]) => {
  await app.loadGraphData(workflow, true, true, name);
}"""

QUEUE = "async () => { await app.queuePrompt(0, 1); }"

# A fresh profile's one-time "Introducing Nodes 2.0" banner, dismissed the way its close mark does.
NO_BANNER = "localStorage.setItem('vueNodesBannerDismissed', 'true');"

NODE_RECTS = "() => app.rootGraph.nodes.map((n) => [n.id, n.type, [...n.pos], [...n.size]])"

# The nodes' area on the page (title bars included), in page pixels, from the canvas's current view.
NODES_BOX = """() => {
  const { scale, offset } = app.canvas.ds;
  const canvas = app.canvas.canvas.getBoundingClientRect();
  const title = LiteGraph.NODE_TITLE_HEIGHT;
  const nodes = app.rootGraph.nodes;
  const x = (v) => canvas.x + (v + offset[0]) * scale, y = (v) => canvas.y + (v + offset[1]) * scale;
  return { left: Math.min(...nodes.map((n) => x(n.pos[0]))), top: Math.min(...nodes.map((n) => y(n.pos[1] - title))),
           right: Math.max(...nodes.map((n) => x(n.pos[0] + n.size[0]))),
           bottom: Math.max(...nodes.map((n) => y(n.pos[1] + n.size[1]))) };
}"""

# Pairs of nodes whose rectangles (title bars included) overlap, in graph units: what grew into
# another node after the run.
OVERLAPS = """() => {
  const title = LiteGraph.NODE_TITLE_HEIGHT;
  const box = (n) => [n.pos[0], n.pos[1] - title, n.pos[0] + n.size[0], n.pos[1] + n.size[1]];
  const nodes = app.rootGraph.nodes, out = [];
  for (const a of nodes) for (const b of nodes) {
    if (a.id >= b.id) continue;
    const [p, q] = [box(a), box(b)];
    if (p[0] < q[2] && q[0] < p[2] && p[1] < q[3] && q[1] < p[3]) out.push(`${a.type} #${a.id} / ${b.type} #${b.id}`);
  }
  return out;
}"""


def start_server(base: Path, install: harness.ComfyInstall) -> harness.ComfyServer:
    harness.make_base(base)
    settings = base / "user" / "default" / "comfy.settings.json"
    settings.parent.mkdir(parents=True, exist_ok=True)
    settings.write_text(json.dumps({"Comfy.TutorialCompleted": True, "Comfy.Minimap.Visible": False}),
                        encoding="utf-8")
    return harness.ComfyServer.of(install, base).start().wait_ready()


def put_models_and_inputs(base: Path, workflows: dict[str, dict], models: Path | None) -> None:
    """The models every workflow names (from `models` when there, else the small test model) and
    the files its loaders read."""
    for workflow in workflows.values():
        for name in harness.model_names(workflow):
            real = models / name if models else None
            harness.put_model(base / "models" / "facerestore", name,
                              real if real and real.is_file() else harness.S64_MODEL_FILE)
        example_inputs.put_inputs(base / "input", workflow, PHOTO_SIZE)


def run_in_page(page, server: harness.ComfyServer) -> dict:
    """Queue the loaded workflow from the page as the Run button does; its /history entry once done."""
    before = set(server.get("/history"))
    page.evaluate(QUEUE)
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while time.monotonic() < deadline:
        queue = server.get("/queue")
        done = set(server.get("/history")) - before
        if done and not queue["queue_running"] and not queue["queue_pending"]:
            return server.get("/history")[done.pop()]
        time.sleep(0.5)
    raise RuntimeError(f"the run did not finish within {RUN_TIMEOUT_S} s:\n{server.log_tail()}")


def shoot(page, server, workflow: dict, stem: str, check: Path | None) -> tuple[bytes, dict, list[str]]:
    """Load, (screenshot,) run, screenshot: the after-run PNG, the nodes' box on it and overlaps."""
    page.evaluate(LOAD, [workflow, stem])
    page.keyboard.press("Escape")  # the template browser, when it opens
    page.wait_for_timeout(2000)  # the Load Image / Load Video previews arrive a little later
    if check:
        page.screenshot(path=str(check / f"{stem} before.png"))
        rects = {"before": page.evaluate(NODE_RECTS)}
    entry = run_in_page(page, server)
    if entry["status"]["status_str"] != "success":
        raise RuntimeError(f"{stem}: the run failed: {harness.history_error(entry)}")
    page.wait_for_timeout(3000)  # the previews of the outputs load
    png = page.screenshot()
    if check:
        (check / f"{stem} after.png").write_bytes(png)
        rects["after"] = page.evaluate(NODE_RECTS)
        (check / f"{stem} nodes.json").write_text(json.dumps(rects), encoding="utf-8")
    return png, page.evaluate(NODES_BOX), page.evaluate(OVERLAPS)


def thumbnail(png: bytes, box: dict, jpg: Path) -> None:
    """The nodes' area of the screenshot, shrunk to at most THUMB_WIDTH wide, as a small JPEG."""
    import io

    from PIL import Image

    pad, badge = 12, 24  # the pack's name badge sits above a node's title bar
    with Image.open(io.BytesIO(png)) as image:
        crop = (max(0, int(box["left"]) - pad), max(0, int(box["top"]) - badge),
                min(image.width, int(box["right"]) + pad), min(image.height, int(box["bottom"]) + pad))
        area = image.convert("RGB").crop(crop)
    if area.width > THUMB_WIDTH:
        area = area.resize((THUMB_WIDTH, round(area.height * THUMB_WIDTH / area.width)), Image.LANCZOS)
    area.save(jpg, quality=78, optimize=True)


def save_picture(png: bytes, path: Path) -> None:
    import io

    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    with Image.open(io.BytesIO(png)) as image:
        image.convert("RGB").save(path, quality=85, optimize=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("workflows", nargs="*", type=Path)
    parser.add_argument("--all", action="store_true", help="every workflow in example_workflows/")
    parser.add_argument("--picture", type=Path, help="also the after-run window as this .jpg or .png (one workflow only)")
    parser.add_argument("--comfy", default=harness.INSTALL_LABELS[0], choices=harness.INSTALL_LABELS)
    parser.add_argument("--models", type=Path, help="a folder with real model files")
    parser.add_argument("--check", type=Path, help="a folder for before/after PNGs of the whole window")
    args = parser.parse_args(argv)
    paths = harness.example_paths() if args.all else args.workflows
    if not paths or (args.picture and len(paths) != 1):
        parser.error("name one workflow (or several without --picture), or use --all")
    install = harness.comfy_install(args.comfy)
    if install.missing:
        parser.error(install.missing)
    workflows = {path: json.loads(path.read_text(encoding="utf-8")) for path in paths}
    if args.check:
        args.check.mkdir(parents=True, exist_ok=True)
    from playwright.sync_api import sync_playwright

    overlapping = 0
    with tempfile.TemporaryDirectory(prefix="gpen-shot-", dir=harness.TMP) as scratch:
        put_models_and_inputs(Path(scratch), workflows, args.models)
        server = start_server(Path(scratch), install)
        try:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
                try:
                    for path, workflow in workflows.items():
                        page = browser.new_page(viewport=VIEWPORT)
                        page.add_init_script(NO_BANNER)
                        page.goto(server.url)
                        page.wait_for_function("() => window.app?.graph")
                        png, box, overlaps = shoot(page, server, workflow, path.stem, args.check)
                        page.close()
                        jpg = path.with_suffix(".jpg")
                        thumbnail(png, box, jpg)
                        if args.picture:
                            save_picture(png, args.picture)
                        overlapping += bool(overlaps)
                        print(f"{jpg.name}: {jpg.stat().st_size // 1024} KB"
                              + (f"; overlapping after the run: {', '.join(overlaps)}" if overlaps else ""))
                finally:
                    browser.close()
        finally:
            server.stop()
    return 1 if overlapping else 0


if __name__ == "__main__":
    sys.exit(main())
