// The GPEN pack's editor extension: model info and first-model download on the model nodes,
// a clickable numbered face preview on GPEN Detect Faces, and node errors in plain words.
// Plain ES module, no build step; talks only to the ComfyUI server (routes in nodes/routes.py).
import { app } from "../../scripts/app.js";
import { api } from "../../scripts/api.js";
import { addFacePicker } from "./gpen_face_picker.js";
import { addModelPanel, onDownloadMessage } from "./gpen_model_panel.js";
import { LOG_PREFIX, chain, injectStyle } from "./gpen_util.js";

const MODEL_NODES = new Set(["GPENLoadModel", "GPENFaceRestore"]);
const DETECT_NODE = "GPENDetectFaces";

function findNode(id) {
  return app.graph?.getNodeById?.(Number(id)) ?? app.graph?.getNodeById?.(id);
}

function panelOf(node) {
  return node?.gpenPanel ?? node?.gpenPicker;
}

// ComfyUI shows its own error dialog; the node that failed also says it in its panel.
function onExecutionError({ detail }) {
  if (!detail?.node_type?.startsWith?.("GPEN")) return;
  const text = detail.exception_message?.trim() || "This node failed; see the ComfyUI log.";
  panelOf(findNode(detail.node_id))?.showError(text);
}

function clearErrors() {
  for (const node of app.graph?.nodes ?? []) panelOf(node)?.showError("");
}

app.registerExtension({
  name: "gpen.comfyui",

  async setup() {
    injectStyle();
    api.addEventListener("gpen.download", ({ detail }) => onDownloadMessage(detail));
    api.addEventListener("execution_error", onExecutionError);
    api.addEventListener("execution_start", clearErrors);
    console.log(`${LOG_PREFIX} editor extension loaded`);
  },

  async beforeRegisterNodeDef(nodeType, nodeData) {
    if (nodeData.name !== DETECT_NODE) return;
    // Our picker shows the preview with clickable faces; the stock preview would show it twice.
    nodeType.prototype.onDrawBackground = function () {};
    chain(nodeType.prototype, "onExecuted", function (output) {
      this.gpenPicker?.show(output);
    });
  },

  nodeCreated(node) {
    if (MODEL_NODES.has(node.comfyClass)) addModelPanel(node);
    else if (node.comfyClass === DETECT_NODE) addFacePicker(node);
  },
});
