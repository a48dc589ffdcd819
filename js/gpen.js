// The GPEN pack's editor extension: model info and first-model download on the model nodes,
// a clickable numbered face preview on GPEN Detect Faces, and node errors in plain words.
// Plain ES module, no build step; talks only to the ComfyUI server (routes in nodes/routes.py).
// Works the same in the classic canvas and the new node renderer ("Nodes 2.0"): everything is driven
// by server messages, widget callbacks and extension hooks, nothing by draw callbacks.
import { app } from "../../scripts/app.js";
import { api } from "../../scripts/api.js";
import { addFacePicker } from "./gpen_face_picker.js";
import { addModelPanel, onDownloadMessage, refreshModelPanels } from "./gpen_model_panel.js";
import { LOG_PREFIX, injectStyle } from "./gpen_util.js";

const MODEL_NODES = new Set(["GPENLoadModel", "GPENFaceRestore"]);
const DETECT_NODE = "GPENDetectFaces";

function findNode(id) {
  const graph = app.rootGraph;
  return graph?.getNodeById(Number(id)) ?? graph?.getNodeById(id);
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
  for (const node of app.rootGraph?.nodes ?? []) panelOf(node)?.showError("");
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

  nodeCreated(node) {
    if (MODEL_NODES.has(node.comfyClass)) addModelPanel(node);
    else if (node.comfyClass === DETECT_NODE) addFacePicker(node);
  },

  // A saved workflow sets the widget values after nodeCreated, without their callbacks.
  loadedGraphNode(node) {
    node.gpenPanel?.refresh();
    node.gpenPicker?.highlight();
  },

  async refreshComboInNodes() {
    refreshModelPanels();
  },
});
