// GPEN Detect Faces: after a run the node shows its preview with every face boxed and numbered
// (the number is what the `indices` input counts); clicking a face adds or removes its number. Filled
// from the node's `executed` message (node.onExecuted, which ComfyUI calls with the node's ui output in
// both renderers, for a node inside a subgraph too). The faces come as the node's own ui key, not as
// "images", so neither renderer shows its stock preview beside the picker.
import { api } from "../../scripts/api.js";
import {
  addPanelWidget, chain, contentHeight, el, findWidget, fitNode, fitOnResize, setWidgetValue,
} from "./gpen_util.js";

export const INDICES_WIDGET = "indices";
const HINT_IDLE = "Queue the workflow to see the numbered faces.";
const HINT_FACES = "Click faces to restore only those; with none chosen every face is restored.";
const PREVIEW_WIDTH = 400;

// The same grammar as the node's `indices` ("0", "0,2", "1-3"), read as [first, last] spans in the
// order written; null means "all faces". Like the node, a range is applied to the faces there are and
// never expanded: "0-99999999" costs what "0-2" does.
export function parseIndices(text) {
  if (!text || !text.trim()) return null;
  const spans = [];
  for (const raw of text.split(",")) {
    const item = raw.trim();
    if (!item) continue;
    const match = /^(\d+)(?:\s*-\s*(\d+))?$/.exec(item);
    if (!match) throw new Error(`'${item}' is not an index or a range`);
    const start = Number(match[1]);
    const end = match[2] === undefined ? start : Number(match[2]);
    if (end < start) throw new Error(`'${item}' runs backwards`);
    spans.push([start, end]);
  }
  return spans;
}

export function isChosen(spans, index) {
  return spans === null || spans.some(([first, last]) => first <= index && index <= last);
}

// Clicking a face while all are kept keeps only that one; removing the last one keeps all again.
// The faces shown (numbered below `count`) are written out one by one; what the text chose past
// them stays as it was, for the images of a batch that have more faces than the preview.
export function toggleIndex(text, index, count = 0) {
  let spans;
  try {
    spans = parseIndices(text);
  } catch {
    spans = null; // unreadable text: start over from this face
  }
  if (spans === null) return String(index);
  const shown = Math.max(count, index + 1);
  const out = [];
  for (let i = 0; i < shown; i++) {
    if (isChosen(spans, i) !== (i === index)) out.push(String(i));
  }
  for (const [first, last] of spans) {
    if (last < shown) continue;
    const from = Math.max(first, shown);
    const item = from === last ? String(last) : `${from}-${last}`;
    if (!out.includes(item)) out.push(item);
  }
  return out.join(",");
}

function viewUrl(ref) {
  const query = new URLSearchParams({
    filename: ref.filename, subfolder: ref.subfolder ?? "", type: ref.type ?? "temp",
  });
  return api.apiURL(`/view?${query}`);
}

const SVG = "http://www.w3.org/2000/svg";

function svg(tag, attrs = {}, ...children) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, String(value));
  node.append(...children);
  return node;
}

// One image with its faces as an SVG in the image's own pixels: as wide as the node, as high as the
// image's aspect ratio makes it (at most 480 px, the picture then centred), in either renderer; boxes
// and numbers stay on the faces without measuring anything. The picture comes unmarked: the numbers
// are drawn here only.
function faceStage(data, onPick) {
  const { width, height } = data;
  const line = Math.max(1, Math.round(Math.min(width, height) / 300));
  const image = svg("image", { href: viewUrl(data.preview), x: 0, y: 0, width, height,
                               preserveAspectRatio: "none" });
  const stage = svg("svg", {
    class: "gpen-stage", viewBox: `0 0 ${width} ${height}`, preserveAspectRatio: "xMidYMid meet",
    style: `aspect-ratio: ${width} / ${height}`,
    "data-width": width, "data-height": height, role: "group", "aria-label": "faces found",
  }, image);
  image.addEventListener("load", () => stage.setAttribute("data-loaded", "true"), { once: true });
  for (const face of data.faces) {
    const [x0, y0, x1, y1] = face.box;
    // About 12 px on screen when the picture is shown 400 px wide, as in a fresh node.
    const size = Math.max(width, height) / 32;
    const label = String(face.index);
    const tagWidth = size * (0.62 * label.length + 0.5);
    const tagTop = Math.max(0, y0 - size * 1.2);
    const group = svg("g", { class: "gpen-face", "data-index": face.index, tabindex: 0 },
      svg("title", {}, `face ${face.index} (score ${face.score})`),
      svg("rect", { class: "gpen-box", x: x0, y: y0, width: x1 - x0, height: y1 - y0, "stroke-width": line * 2 }),
      svg("rect", { class: "gpen-tag", x: x0 - line, y: tagTop, width: tagWidth, height: size * 1.2 }),
      svg("text", { x: x0 - line + size * 0.25, y: tagTop + size * 0.95, "font-size": size }, label));
    group.addEventListener("click", (event) => {
      event.stopPropagation();
      onPick(face.index);
    });
    stage.append(group);
  }
  return stage;
}

class FacePicker {
  constructor(node) {
    this.node = node;
    this.images = [];
    this.hint = el("div", { class: "gpen-muted gpen-picker-hint", textContent: HINT_IDLE });
    this.error = el("div", { class: "gpen-error gpen-node-error", hidden: true });
    this.root = el("div", { class: "gpen-picker" }, this.error, this.hint);
    this.widget = addPanelWidget(node, "gpen_face_picker", this.root, { getMinHeight: () => this.minHeight() });
    this.resizes = fitOnResize(node, [this.error, this.hint]);
    const indices = this.indicesWidget;
    if (indices) chain(indices, "callback", () => this.highlight());
  }

  get indicesWidget() {
    return findWidget(this.node, INDICES_WIDGET);
  }

  // The classic canvas gives the picker at least this much: its content, measured once on the page.
  minHeight() {
    const measured = contentHeight(this.root);
    if (measured !== null) return measured;
    const error = this.error.hidden ? 0 : 48;
    if (!this.images.length) return 32 + error;
    const width = Math.max(120, this.node.size[0] - 20);
    const heights = this.images.map((data) => Math.min(480, (width * data.height) / Math.max(1, data.width)));
    return 28 + error + heights.reduce((a, b) => a + b, 0);
  }

  // `output` is the node's ui output from the `executed` message: {gpen_faces: [{preview, faces, ...}]}.
  show(output) {
    this.images = (output?.gpen_faces ?? []).filter((data) => data.preview);
    this.stages = this.images.map((data) => faceStage(data, (index) => this.toggle(index)));
    this.root.replaceChildren(this.error, this.hint, ...this.stages);
    for (const stage of this.stages) this.resizes.observe(stage);
    const count = this.images.reduce((n, data) => n + data.faces.length, 0);
    this.hint.textContent = this.images.length ? (count ? HINT_FACES : "No face was found.") : HINT_IDLE;
    this.highlight();
    // Wide enough to tell the faces apart; the user can still make it larger.
    if (this.images.length && this.node.size[0] < PREVIEW_WIDTH) this.node.setSize([PREVIEW_WIDTH, this.node.size[1]]);
    fitNode(this.node);
  }

  showError(text) {
    if (text === this.error.textContent && this.error.hidden === !text) return;
    this.error.textContent = text;
    this.error.hidden = !text;
    fitNode(this.node);
  }

  toggle(index) {
    const widget = this.indicesWidget;
    if (!widget) return;
    const count = Math.max(0, ...this.images.flatMap((data) => data.faces.map((face) => face.index + 1)));
    setWidgetValue(this.node, widget, toggleIndex(String(widget.value ?? ""), index, count));
    this.highlight();
  }

  // Green for the faces `indices` keeps, grey for the others; follows the widget's callback, so a
  // typed value shows as well as a click.
  highlight() {
    const text = String(this.indicesWidget?.value ?? "");
    let spans;
    try {
      spans = parseIndices(text);
    } catch {
      spans = []; // the node refuses it: no face is kept
    }
    for (const face of this.root.querySelectorAll(".gpen-face")) {
      face.classList.toggle("gpen-kept", isChosen(spans, Number(face.dataset.index)));
    }
  }
}

export function addFacePicker(node) {
  const picker = new FacePicker(node);
  chain(node, "onExecuted", (output) => picker.show(output));
  node.gpenPicker = picker;
  return picker;
}
