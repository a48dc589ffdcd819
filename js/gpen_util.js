// Small helpers shared by the GPEN editor extension. Only the ComfyUI server is ever called
// (through api.fetchApi, which adds the server's base path).
import { api } from "../../scripts/api.js";
import { app } from "../../scripts/app.js";

export const LOG_PREFIX = "[GPEN]";
const PANEL_MARGIN = 6;
const MIN_LAID_OUT_WIDTH = 100;

export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key === "class") node.className = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key === "style") Object.assign(node.style, value);
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node[key] = value;
  }
  for (const child of children) {
    if (child != null) node.append(child);
  }
  return node;
}

// GET/POST a GPEN route; resolves to {ok, status, data}. A refusal (4xx) carries the server's
// sentence in data.error; a network failure becomes a sentence too, never an exception.
export async function callRoute(route, options = {}) {
  try {
    const response = await api.fetchApi(route, options);
    let data = {};
    try {
      data = await response.json();
    } catch {
      data = { error: `The server answered ${response.status} without details.` };
    }
    return { ok: response.ok, status: response.status, data };
  } catch (err) {
    return { ok: false, status: 0, data: { error: `Cannot reach the ComfyUI server (${err?.message ?? err}).` } };
  }
}

export function postJson(route, body) {
  return callRoute(route, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
}

export function formatBytes(bytes) {
  if (bytes == null) return "?";
  if (bytes < 1024) return `${bytes} B`;
  const units = ["KB", "MB", "GB"];
  let value = bytes / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${value.toFixed(1)} ${units[unit]}`;
}

export function formatCount(count) {
  if (count == null) return null;
  return count >= 1e6 ? `${(count / 1e6).toFixed(2)} M` : `${(count / 1e3).toFixed(1)} k`;
}

export function findWidget(node, name) {
  return node.widgets?.find((w) => w.name === name);
}

// Sets a widget the way a user edit does: value, then the widget's own callback.
export function setWidgetValue(node, widget, value) {
  widget.value = value;
  widget.callback?.(value, app.canvas, node);
  node.setDirtyCanvas?.(true, true);
}

// A DOM widget that is never saved into the workflow or sent with the prompt: appended after the
// node's own widgets so the positions of saved widget values do not move. Its height is declared
// through the addDOMWidget options (getMinHeight/getMaxHeight), which the classic canvas uses to lay
// out the node; the new renderer ("Nodes 2.0") gives the element the height of its content instead.
// Nothing here is drawn or updated from draw callbacks: the new renderer never calls them.
// getMinHeight/getMaxHeight give the content's height: the classic canvas adds the margin it keeps
// around the element (`margin` in the options) to it.
export function addPanelWidget(node, name, element, { getMinHeight, getMaxHeight }) {
  const withMargin = (height) => () => height() + 2 * PANEL_MARGIN;
  const widget = node.addDOMWidget(name, name, element, {
    serialize: false,
    hideOnZoom: false,
    margin: PANEL_MARGIN,
    getValue: () => "",
    setValue: () => {},
    getMinHeight: withMargin(getMinHeight),
    ...(getMaxHeight ? { getMaxHeight: withMargin(getMaxHeight) } : {}),
  });
  widget.serialize = false;
  return widget;
}

// The height an element's content needs (its children's bottom edge plus its own bottom padding), in
// CSS pixels before any canvas zoom; null while it is not laid out (not yet in the page, or not yet
// given its width: text wrapped into a sliver would ask for far too much).
export function contentHeight(element) {
  if (!element.isConnected || element.offsetParent === null || element.clientWidth < MIN_LAID_OUT_WIDTH) {
    return null;
  }
  let bottom = 0;
  for (const child of element.children) {
    if (child.offsetParent === null) continue; // hidden
    bottom = Math.max(bottom, child.offsetTop + child.offsetHeight);
  }
  const padding = parseFloat(getComputedStyle(element).paddingBottom) || 0;
  return bottom > 0 ? Math.ceil(bottom + padding) : null;
}

// Grows the node whenever one of `elements` changes size (new text, a picture loaded, the download
// box shown): the classic canvas gives a DOM widget the height it declares, so the declared height has
// to follow the content. Returns the observer, for more elements later.
export function fitOnResize(node, elements) {
  const observer = new ResizeObserver(() => fitNode(node));
  for (const element of elements) observer.observe(element);
  return observer;
}

// Grows the node when its panels need more room; never shrinks what the user sized.
export function fitNode(node) {
  const wanted = node.computeSize?.();
  if (!wanted) return;
  const width = Math.max(node.size[0], wanted[0]);
  const height = Math.max(node.size[1], wanted[1]);
  if (width !== node.size[0] || height !== node.size[1]) node.setSize([width, height]);
  node.setDirtyCanvas?.(true, true);
}

// Chains a handler after an existing node method (keeps what ComfyUI or other packs put there).
export function chain(target, method, handler) {
  const previous = target[method];
  target[method] = function (...args) {
    const result = previous?.apply(this, args);
    handler.apply(this, args);
    return result;
  };
}

const STYLE = `
.gpen-panel { font: 12px sans-serif; color: var(--input-text, #ddd); display: flex; flex-direction: column;
  gap: 4px; padding: 2px 4px 4px; box-sizing: border-box; overflow: hidden; position: relative; }
.gpen-panel > *, .gpen-picker > * { flex: none; }
.gpen-info { line-height: 1.35; white-space: normal; word-break: break-word; }
.gpen-licence, .gpen-hash, .gpen-download-status { overflow-wrap: anywhere; }
.gpen-muted { color: var(--descrip-text, #999); font-size: 11px; }
.gpen-error { color: var(--error-text, #ff6b6b); }
.gpen-ok { color: #7bd88f; }
.gpen-download { display: flex; flex-direction: column; gap: 4px; border-top: 1px solid var(--border-color, #444);
  padding-top: 4px; }
.gpen-download[hidden], .gpen-node-error[hidden], .gpen-download-cancel[hidden] { display: none; }
.gpen-row { display: flex; gap: 4px; align-items: center; }
.gpen-row select { flex: 1 1 0; width: 0; min-width: 0; background: var(--comfy-input-bg, #222); color: inherit;
  border: 1px solid var(--border-color, #444); border-radius: 4px; }
.gpen-row button { flex: none; background: var(--comfy-input-bg, #222); color: inherit;
  border: 1px solid var(--border-color, #555); border-radius: 4px; padding: 2px 8px; cursor: pointer; }
.gpen-row button:disabled { opacity: 0.5; cursor: default; }
.gpen-download progress { width: 100%; height: 8px; }
.gpen-picker { font: 12px sans-serif; color: var(--input-text, #ddd); display: flex; flex-direction: column;
  gap: 4px; align-items: stretch; overflow: hidden; box-sizing: border-box; position: relative; }
.gpen-picker-hint { text-align: center; }
.gpen-stage { display: block; width: 100%; height: auto; max-height: 480px; user-select: none; }
.gpen-face { cursor: pointer; }
.gpen-face rect.gpen-box { fill: transparent; stroke: #969696; }
.gpen-face rect.gpen-tag { fill: #969696; }
.gpen-face text { fill: #000; font-family: sans-serif; font-weight: bold; pointer-events: none; }
.gpen-face.gpen-kept rect.gpen-box { stroke: #50dc64; }
.gpen-face.gpen-kept rect.gpen-tag { fill: #50dc64; }
.gpen-face:hover rect.gpen-box { fill: rgba(255, 255, 255, 0.15); }
`;

export function injectStyle() {
  if (document.getElementById("gpen-style")) return;
  document.head.append(el("style", { id: "gpen-style", textContent: STYLE }));
}
