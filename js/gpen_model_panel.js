// The panel under a GPEN model choice (Load GPEN Model, GPEN Face Restore): what the chosen file
// is, and, when no model is installed yet, a button that downloads one with a progress bar (and a
// Cancel button while it runs). The content follows data, never drawing: the model widget's callback
// (a user's choice, in either renderer), a loaded workflow, a refresh of the model lists, a download.
import { app } from "../../scripts/app.js";
import {
  addPanelWidget, callRoute, chain, contentHeight, el, findWidget, fitNode, fitOnResize, formatBytes, formatCount,
  postJson, setWidgetValue,
} from "./gpen_util.js";

export const MODEL_WIDGET = "model_name";
const PANELS = new Set();
const NOT_SHOWN = Symbol("not shown"); // differs from every widget value, undefined included
let catalogueRequest = null;

// The download catalogue; one request for all panels (a failed one is tried again next time).
function loadCatalogue() {
  if (!catalogueRequest) {
    catalogueRequest = callRoute("/gpen/models").then((answer) => {
      if (!answer.ok) catalogueRequest = null;
      return answer;
    });
  }
  return catalogueRequest;
}

function describeInfo(info) {
  if (!info.ok) return { text: info.error, error: true };
  const kind = { restore: "face restoration", colorize: "colorization", inpaint: "inpainting" }[info.task] ?? info.task;
  const parts = [`GPEN-${info.size} · ${kind}`, `${info.size}×${info.size} px faces`];
  const params = formatCount(info.parameters);
  if (params) parts.push(`${params} parameters`);
  parts.push(info.format === "onnx" ? `ONNX ${info.dtype}` : info.dtype, formatBytes(info.file_bytes));
  return { text: parts.join(" · "), error: false };
}

class ModelPanel {
  constructor(node) {
    this.node = node;
    this.shownName = NOT_SHOWN;
    this.request = 0;
    this.info = el("div", { class: "gpen-info" });
    this.licence = el("div", { class: "gpen-muted gpen-licence" });
    this.hash = el("div", { class: "gpen-muted gpen-hash" });
    this.error = el("div", { class: "gpen-error gpen-node-error", hidden: true });
    this.select = el("select", { class: "gpen-download-choice", title: "Model file to download" });
    this.button = el("button", {
      class: "gpen-download-button", textContent: "Download", onclick: () => this.download(),
    });
    this.cancelButton = el("button", {
      class: "gpen-download-cancel", textContent: "Cancel", hidden: true, onclick: () => this.cancel(),
    });
    this.progress = el("progress", { max: 100, value: 0 });
    this.status = el("div", { class: "gpen-muted gpen-download-status" });
    this.downloadBox = el("div", { class: "gpen-download", hidden: true },
      el("div", { class: "gpen-muted", textContent: "No GPEN model is installed yet (models/facerestore)." }),
      el("div", { class: "gpen-row" }, this.select, this.button, this.cancelButton), this.progress, this.status);
    this.root = el("div", { class: "gpen-panel gpen-model-panel" },
      this.error, this.info, this.licence, this.hash, this.downloadBox);
    // The panel takes the height of its content, no more: the licence line is never cut off.
    const height = () => this.minHeight();
    this.widget = addPanelWidget(node, "gpen_model_info", this.root, { getMinHeight: height, getMaxHeight: height });
    fitOnResize(node, [this.error, this.info, this.licence, this.hash, this.downloadBox]);
    const model = this.modelWidget;
    if (model) chain(model, "callback", () => this.refresh());
  }

  get modelWidget() {
    return findWidget(this.node, MODEL_WIDGET);
  }

  // Measured once the panel is on the page; before that, room for the usual lines.
  minHeight() {
    return contentHeight(this.root) ?? (this.downloadBox.hidden ? 64 : 150) + (this.error.hidden ? 0 : 48);
  }

  refresh() {
    const value = this.modelWidget?.value;
    if (value !== this.shownName) this.showModel(value);
    else if (this.modelListEmpty() !== this.shownEmpty) this.refreshDownloadBox();
  }

  setInfo(text, kind = "") {
    this.info.textContent = text;
    this.info.className = `gpen-info ${kind}`;
  }

  async showModel(name) {
    this.shownName = name;
    const request = ++this.request;
    this.licence.textContent = "";
    this.hash.textContent = "";
    this.info.title = "";
    delete this.info.dataset.file;
    if (!name) {
      this.setInfo("Choose a GPEN model file.", "gpen-muted");
      await this.refreshDownloadBox();
      return;
    }
    const listed = this.modelWidget?.options?.values;
    if (Array.isArray(listed) && !listed.includes(name)) {
      // A saved workflow naming a file this ComfyUI does not have: say so without asking the server.
      this.setInfo(`${name} is not installed: put it in models/facerestore (or download a model below) ` +
        "and refresh the node lists (R).", "gpen-error");
      await this.refreshDownloadBox();
      return;
    }
    this.setInfo(`Reading ${name}…`, "gpen-muted");
    const { ok, data } = await callRoute(`/gpen/model_info?name=${encodeURIComponent(name)}`);
    if (request !== this.request) return; // another file was chosen meanwhile
    this.info.dataset.file = name; // which file the text describes
    if (!ok) {
      this.setInfo(data.error ?? `Cannot read ${name}.`, "gpen-error");
    } else {
      const { text, error } = describeInfo(data);
      this.setInfo(text, error ? "gpen-error" : "");
      this.info.title = data.parameters ? `${data.parameters.toLocaleString("en-US")} parameters` : "";
      this.licence.textContent = data.licence ?? "";
      this.hash.textContent = data.sha256 ? `sha256 ${data.sha256} (recorded at download)` : "";
    }
    await this.refreshDownloadBox();
    fitNode(this.node);
  }

  // The download box shows while the model list is empty (ComfyUI's own list, so a manual
  // refresh after copying a file in hides it) or while a download runs.
  modelListEmpty() {
    const values = this.modelWidget?.options?.values;
    return !Array.isArray(values) || values.length === 0;
  }

  async refreshDownloadBox() {
    const empty = this.modelListEmpty();
    this.shownEmpty = empty;
    if (empty && this.select.options.length === 0) {
      const { ok, data } = await loadCatalogue();
      if (ok && this.select.options.length === 0) {
        for (const entry of data.catalog ?? []) {
          const size = entry.size_bytes ? ` (${formatBytes(entry.size_bytes)})` : "";
          this.select.append(el("option", { value: entry.name, textContent: entry.name + size }));
        }
        this.select.value = data.default;
      } else if (!ok) {
        this.status.className = "gpen-error gpen-download-status";
        this.status.textContent = data.error;
      }
    }
    const hidden = !empty && !this.busy;
    if (this.downloadBox.hidden !== hidden) {
      this.downloadBox.hidden = hidden;
      fitNode(this.node);
    }
  }

  async download() {
    const name = this.select.value;
    this.busy = name;
    this.button.disabled = true;
    this.progress.value = 0;
    this.status.className = "gpen-muted gpen-download-status";
    this.status.textContent = `Starting ${name}…`;
    this.cancelButton.hidden = false;
    this.cancelButton.disabled = false;
    const { ok, status, data } = await postJson("/gpen/download", { name });
    if (!ok && status !== 409) this.onMessage({ name, state: "error", message: data.error });
  }

  // The server answers once the transfer has stopped and its .part is gone (200), or while it is
  // still finishing (202: the websocket brings the end); 409 means it had already ended.
  async cancel() {
    const name = this.busy;
    if (!name) return;
    this.cancelButton.disabled = true;
    this.status.textContent = `Cancelling ${name}…`;
    const { ok, status, data } = await postJson("/gpen/download_cancel", { name });
    if (status === 200) this.onMessage(data);
    else if (!ok && status !== 409 && this.busy === name) {
      this.cancelButton.disabled = false;
      this.status.textContent = data.error;
    }
  }

  async onMessage(message) {
    if (message.name !== this.busy) return;
    if (message.state === "progress") {
      if (message.total) {
        this.progress.value = Math.floor((100 * message.done) / message.total);
        this.status.textContent = `${formatBytes(message.done)} of ${formatBytes(message.total)}`;
      } else {
        this.progress.removeAttribute("value");
        this.status.textContent = `${formatBytes(message.done)}`;
      }
      return;
    }
    this.busy = null;
    this.button.disabled = false;
    this.cancelButton.hidden = true;
    if (message.state === "error" || message.state === "cancelled") {
      this.progress.value = 0;
      this.status.className = message.state === "error"
        ? "gpen-error gpen-download-status" : "gpen-muted gpen-download-status gpen-cancelled";
      this.status.textContent = message.message;
      return;
    }
    this.progress.value = 100;
    let hash = `sha256 ${message.sha256} matches the published one`;
    if (!message.hash_checked) {
      hash = message.sha256_file
        ? `sha256 ${message.sha256} (no published hash: read as the GPEN its name says; ` +
          `recorded in ${message.sha256_file})`
        : `sha256 ${message.sha256} (no published hash: read as the GPEN its name says)`;
    }
    this.status.className = "gpen-ok gpen-download-status";
    this.status.textContent = `${message.already_present ? "Already installed" : "Downloaded"}: ${message.name}, ` +
      `${formatBytes(message.bytes)}. ${hash}.`;
    await refreshModelLists();
    const widget = this.modelWidget;
    this.shownName = NOT_SHOWN; // the file may have been chosen before it existed: read it again
    if (widget && widget.options?.values?.includes?.(message.name)) setWidgetValue(this.node, widget, message.name);
    this.refresh();
    fitNode(this.node);
  }

  // A failed run of this node, in ComfyUI's words (our nodes raise one sentence saying what to do).
  showError(text) {
    if (text === this.error.textContent && this.error.hidden === !text) return;
    this.error.textContent = text;
    this.error.hidden = !text;
    fitNode(this.node);
  }

  dispose() {
    PANELS.delete(this);
  }
}

// After a download: the server lists the new file; every model combo in the graph gets it.
async function refreshModelLists() {
  await app.refreshComboInNodes();
}

export function addModelPanel(node) {
  if (!findWidget(node, MODEL_WIDGET)) return null;
  const panel = new ModelPanel(node);
  PANELS.add(panel);
  chain(node, "onRemoved", () => panel.dispose());
  node.gpenPanel = panel;
  panel.refresh();
  fitNode(node);
  return panel;
}

// The model lists changed (ComfyUI's refresh, R): the download box follows whether any model is left.
export function refreshModelPanels() {
  for (const panel of PANELS) panel.refresh();
}

export function onDownloadMessage(message) {
  for (const panel of PANELS) panel.onMessage(message);
}
