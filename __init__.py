"""ComfyUI entry point of the GPEN face-restoration node pack.

pytest also imports this file (the repository root is a package), outside ComfyUI:
then it registers nothing, since the nodes need ComfyUI's modules.
"""
import os
import sys

_PACK_DIR = os.path.dirname(os.path.abspath(__file__))
# The pipeline imports its core as `import gpen_arch`. Appended, not prepended: this
# folder holds a `nodes` package that must never shadow ComfyUI's own `nodes` module.
if _PACK_DIR not in sys.path:
    sys.path.append(_PACK_DIR)

WEB_DIRECTORY = "./js"

if "folder_paths" in sys.modules:  # imported by ComfyUI (main.py imports folder_paths first)
    from .nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS
else:
    NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS = {}, {}

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS", "WEB_DIRECTORY"]
