// GPEN Detect Faces: after a run the node shows its preview with every face boxed and numbered
// (the number is what the `indices` input counts); clicking a face adds or removes its number.
import { api } from "../../scripts/api.js";
import { addPanelWidget, el, findWidget, fitNode, setWidgetValue } from "./gpen_util.js";

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

class FacePicker {
  constructor(node) {
    this.node = node;
    this.images = [];
    this.shownIndices = undefined;
    this.hint = el("div", { class: "gpen-muted gpen-picker-hint", textContent: HINT_IDLE });
    this.error = el("div", { class: "gpen-error gpen-node-error", hidden: true });
    this.root = el("div", { class: "gpen-picker" }, this.error, this.hint);
    this.widget = addPanelWidget(node, "gpen_face_picker", this.root, () => this.minHeight(), () => this.onDraw());
  }

  get indicesWidget() {
    return findWidget(this.node, INDICES_WIDGET);
  }

  minHeight() {
    const error = this.error.hidden ? 0 : 48;
    if (!this.images.length) return 32 + error;
    const width = Math.max(120, this.node.size[0] - 20);
    const heights = this.images.map(({ data }) => Math.min(480, (width * data.height) / Math.max(1, data.width)));
    return 28 + error + heights.reduce((a, b) => a + b, 0);
  }

  show(output) {
    const refs = output?.images ?? [];
    const boxes = output?.gpen_faces ?? [];
    this.images = boxes.filter((data) => refs[data.image]).map((data) => ({ data, ref: refs[data.image] }));
    this.root.replaceChildren(this.error, this.hint);
    this.stages = this.images.map(({ data, ref }) => this.stage(data, ref));
    this.root.append(...this.stages);
    const count = this.images.reduce((n, { data }) => n + data.faces.length, 0);
    this.hint.textContent = this.images.length ? (count ? HINT_FACES : "No face was found.") : HINT_IDLE;
    this.shownIndices = undefined;
    this.lastSize = null;
    // Wide enough to tell the faces apart; the user can still make it larger.
    if (this.images.length && this.node.size[0] < PREVIEW_WIDTH) this.node.setSize([PREVIEW_WIDTH, this.node.size[1]]);
    fitNode(this.node);
  }

  showError(text) {
    if (text === this.error.textContent && this.error.hidden === !text) return;
    this.error.textContent = text;
    this.error.hidden = !text;
    this.lastSize = null;
    fitNode(this.node);
  }

  stage(data, ref) {
    const stage = el("div", { class: "gpen-stage", dataset: { width: data.width, height: data.height } },
      el("img", {
        src: viewUrl(ref), alt: "faces found", draggable: false, onload: () => this.node.setDirtyCanvas(true, true),
      }));
    for (const face of data.faces) {
      const [x0, y0, x1, y1] = face.box;
      const button = el("button", {
        class: "gpen-face",
        title: `face ${face.index} (score ${face.score})`,
        dataset: { index: face.index },
        style: {
          left: `${(100 * x0) / data.width}%`, top: `${(100 * y0) / data.height}%`,
          width: `${(100 * (x1 - x0)) / data.width}%`, height: `${(100 * (y1 - y0)) / data.height}%`,
        },
        onclick: (event) => {
          event.stopPropagation();
          this.toggle(face.index);
        },
      }, el("span", { textContent: String(face.index) }));
      stage.append(button);
    }
    return stage;
  }

  toggle(index) {
    const widget = this.indicesWidget;
    if (!widget) return;
    const count = Math.max(0, ...this.images.flatMap(({ data }) => data.faces.map((face) => face.index + 1)));
    setWidgetValue(this.node, widget, toggleIndex(String(widget.value ?? ""), index, count));
    this.highlight();
  }

  highlight() {
    const text = String(this.indicesWidget?.value ?? "");
    this.shownIndices = text;
    let spans;
    try {
      spans = parseIndices(text);
    } catch {
      spans = []; // the node refuses it: no face is kept
    }
    for (const button of this.root.querySelectorAll(".gpen-face")) {
      button.classList.toggle("gpen-kept", isChosen(spans, Number(button.dataset.index)));
    }
  }

  // Keeps each image's stage at the image's aspect ratio inside the room the node gives us, so
  // the face buttons (placed in % of the image) sit exactly on the faces.
  layout() {
    const width = this.root.clientWidth;
    const height = this.root.clientHeight - this.hint.offsetHeight - this.error.offsetHeight - 4 * this.images.length;
    const key = `${width}x${height}`;
    if (!this.stages?.length || key === this.lastSize || width <= 0) return;
    this.lastSize = key;
    const share = Math.max(20, height / this.stages.length);
    this.images.forEach(({ data }, i) => {
      const scale = Math.min(width / data.width, share / data.height);
      this.stages[i].style.width = `${Math.floor(data.width * scale)}px`;
      this.stages[i].style.height = `${Math.floor(data.height * scale)}px`;
    });
  }

  onDraw() {
    this.layout();
    if (String(this.indicesWidget?.value ?? "") !== this.shownIndices) this.highlight();
  }
}

export function addFacePicker(node) {
  const picker = new FacePicker(node);
  node.gpenPicker = picker;
  return picker;
}
