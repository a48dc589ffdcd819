"""The editor page for the tests in test_frontend.py: Chromium's settings, what the page logs, and the
JavaScript the tests run in it, the same in the classic and the new node renderer."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import pytest

import comfy_harness as harness

CHROMIUM = os.environ.get("GPEN_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage"]
PACK_JS = f"/extensions/{harness.PACK_NAME}/"
TIMEOUT_MS = 30_000
SCREENSHOTS = harness.TMP / "screenshots"  # the test output folder (git-ignored)


@dataclass
class BrowserLog:
    console: list[tuple[str, str, str]] = field(default_factory=list)  # (type, text, source url)
    requests: list[str] = field(default_factory=list)

    def ours(self, kinds=("error", "pageerror")) -> list[tuple[str, str, str]]:
        """Errors raised in our files (the source or a stack line) or by requests to our routes.
        Not the stock frontend's own (for example its blocked registry look-up of our node ids)."""
        marks = (PACK_JS, "/gpen/")
        return [entry for entry in self.console
                if entry[0] in kinds and any(mark in entry[1] or mark in entry[2] for mark in marks)]


# The frontend warns when a deprecated API of its own is used, with no hint of the caller in the console
# message; the stack at the moment of the warning says whether our files were on it. (The frontend also
# warns about its own settings at start, with no extension on the stack.)
RECORD_DEPRECATIONS = """(() => {
  window.__gpenDeprecations = [];
  const warn = console.warn;
  console.warn = function (...args) {
    const text = args.map(String).join(' ');
    if (/deprecat/i.test(text)) window.__gpenDeprecations.push([text, new Error().stack]);
    return warn.apply(this, args);
  };
})();"""


# The old nodes are removed one by one, not with clear(): node ids then keep counting up, and the new
# renderer of frontend 1.32.9 would otherwise show a new node with the same id with the old node's
# DOM widgets.
NEW_NODE = """async (type) => {
  for (const old of [...app.rootGraph.nodes]) app.rootGraph.remove(old);
  const node = LiteGraph.createNode(type);
  node.pos = [320, 220];
  app.rootGraph.add(node);
  app.canvas.ds.scale = 1;
  app.canvas.ds.offset = [0, 0];
  app.rootGraph.setDirtyCanvas(true, true);
  await new Promise((resolve) => setTimeout(resolve, 300));
  return node.id;
}"""

CHOOSE_MODEL = """([id, name]) => {
  const node = app.rootGraph.getNodeById(id);
  const widget = node.widgets.find((w) => w.name === "model_name");
  widget.value = name;
  widget.callback?.(name, app.canvas, node);
  app.rootGraph.setDirtyCanvas(true, true);
  return widget.options.values;
}"""

WIDGET_VALUE = """([id, name]) => app.rootGraph.getNodeById(id).widgets.find((w) => w.name === name).value"""

# Where a node is on the page, in either renderer: the Vue node's own element, or on the classic
# canvas the node's rectangle (title bar included) mapped to page pixels.
NODE_BOX = """(id) => {
  const vue = document.querySelector(`[data-node-id="${id}"]`);
  if (vue) {
    const r = vue.getBoundingClientRect();
    return { x: r.x, y: r.y, width: r.width, height: r.height };
  }
  const node = app.rootGraph.getNodeById(id);
  const canvas = app.canvas.canvas.getBoundingClientRect();
  const { scale, offset } = app.canvas.ds;
  const title = LiteGraph.NODE_TITLE_HEIGHT;
  return { x: canvas.x + (node.pos[0] + offset[0]) * scale, y: canvas.y + (node.pos[1] - title + offset[1]) * scale,
           width: node.size[0] * scale, height: (node.size[1] + title) * scale };
}"""


def close_dialogs(page) -> None:
    """ComfyUI's own dialogs (the error report of a failed run) cover the canvas; Escape closes them."""
    masks = page.locator(".p-dialog-mask")
    for _ in range(5):
        if masks.count() == 0:
            return
        page.keyboard.press("Escape")
        page.wait_for_timeout(100)
    assert masks.count() == 0, "a ComfyUI dialog stays open"


def refresh_lists(page) -> None:
    page.evaluate("() => app.refreshComboInNodes()")


def no_errors_from_us(page) -> None:
    assert page.gpen_log.ours() == []
    deprecated = page.evaluate("() => window.__gpenDeprecations")
    assert [stack for _, stack in deprecated if PACK_JS in stack] == [], deprecated


def screenshot(page, node_id, name: str) -> Path:
    """The node as it looks on the page, into the test output folder (tests/.tmp/screenshots)."""
    page.wait_for_timeout(300)  # one frame of the canvas after the last change
    box = page.evaluate(NODE_BOX, node_id)
    pad = 12
    clip = {"x": max(0, box["x"] - pad), "y": max(0, box["y"] - pad),
            "width": box["width"] + 2 * pad, "height": box["height"] + 2 * pad}
    path = SCREENSHOTS / f"{name}-{page.gpen_combo}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(path), clip=clip)
    return path


# The element is inside its panel and nothing covers it (its middle, both ends and its bottom edge
# are on top). The canvas lays DOM widgets out on its next frame, so this is waited for.
FULLY_VISIBLE = """(selector) => {
  const element = document.querySelector(selector);
  const panel = element?.closest('.gpen-panel, .gpen-picker');
  if (!panel) return false;
  const r = element.getBoundingClientRect();
  const p = panel.getBoundingClientRect();
  if (r.height === 0 || r.top < p.top - 0.5 || r.bottom > p.bottom + 0.5) return false;
  const on = (x, y) => {
    const hit = document.elementFromPoint(x, y);
    return hit === element || element.contains(hit);
  };
  const y = r.top + r.height / 2;
  return on(r.left + 2, y) && on(r.left + r.width / 2, y) && on(r.right - 2, y) && on(r.left + 2, r.bottom - 1);
}"""


WHAT_COVERS = """(selector) => {
  const r = document.querySelector(selector).getBoundingClientRect();
  const hit = document.elementFromPoint(r.left + 2, r.bottom - 1);
  return [r.top, r.bottom, hit?.outerHTML?.slice(0, 200)];
}"""


def wait_fully_visible(page, selector: str) -> None:
    try:
        page.wait_for_function(FULLY_VISIBLE, arg=selector, timeout=5_000)
    except Exception:
        pytest.fail(f"{selector} is cut off or covered: {page.evaluate(WHAT_COVERS, selector)}")


def wait_download_finished(page) -> str:
    status = page.locator(".gpen-download-status")
    page.wait_for_function("""() => {
      const s = document.querySelector('.gpen-download-status');
      return s && (s.classList.contains('gpen-ok') || s.classList.contains('gpen-error'));
    }""")
    return status.get_attribute("class")
