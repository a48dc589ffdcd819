"""Fixtures for the node tests: an in-process ComfyUI (CPU, a temp base folder,
our pack loaded through `nodes.load_custom_node`) and a real server subprocess.

The import order matters (see the notes on the vendored 0.3.75):
- ComfyUI's root goes first on sys.path: this repository also holds a `nodes`
  package, and ComfyUI's `nodes.py` must win;
- `args.cpu` and `args.base_directory` are set before `comfy.model_management`
  and `folder_paths` are first imported (both read them at import);
- `utils.extra_config` is imported before `nodes`, which puts comfy/ on sys.path
  where `comfy/utils.py` would shadow the `utils` package.
"""
from __future__ import annotations

import asyncio
import os
import sys
import types
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import comfy_harness as harness  # noqa: E402

for _key, _value in harness.OFFLINE_ENV.items():
    os.environ.setdefault(_key, _value)



@pytest.fixture(scope="session")
def comfy_tree() -> Path:
    return harness.ensure_comfy_tree()


def _import_comfy(tree: Path, base: Path):
    already = sys.modules.get("nodes")
    if already is not None and not hasattr(already, "load_custom_node"):
        raise RuntimeError(f"`nodes` is already imported from {getattr(already, '__file__', '?')}, not from "
                           "ComfyUI; this repository's nodes/ package must never be imported as top-level `nodes`")
    if str(tree) not in sys.path:
        sys.path.insert(0, str(tree))
    import comfy.options  # noqa: F401  (args parsing stays off: pytest's argv is not ComfyUI's)
    from comfy.cli_args import args

    args.cpu = True
    args.base_directory = str(base)
    args.disable_api_nodes = True
    import utils.extra_config  # noqa: F401
    import folder_paths
    import comfy.model_management as model_management
    import comfy.utils
    import server
    import nodes
    import execution

    return types.SimpleNamespace(args=args, folder_paths=folder_paths, mm=model_management, utils=comfy.utils,
                                 server=server, nodes=nodes, execution=execution,
                                 extra_config=sys.modules["utils.extra_config"])


@pytest.fixture(scope="session")
def comfy(comfy_tree, tmp_path_factory):
    """ComfyUI imported in this process with our pack loaded from <base>/custom_nodes/comfyui-gpen.

    Model folders: the fixture model in models/facerestore and models/facerestore_models, and
    in an extra folder that an extra_model_paths.yaml adds (loaded before the pack, as main.py does).
    """
    base = harness.make_base(tmp_path_factory.mktemp("comfy_inproc"))
    extra_root = base / "extra_models"
    env = _import_comfy(comfy_tree, base)
    harness.put_model(base / "models" / "facerestore", "GPEN-tiny-64.pth")
    harness.put_model(base / "models" / "facerestore_models", "GPEN-BFR-tiny-reactor.pth")
    harness.put_model(base / "models" / "facerestore_models", "codeformer-v0.1.0.pth")  # listed nowhere
    harness.put_model(extra_root / "gpen", "GPEN-tiny-extra.pth")
    env.extra_config.load_extra_path_config(str(harness.write_yaml_extra_paths(base, extra_root)))

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    env.server.PromptServer(loop)
    pack_dir = base / "custom_nodes" / harness.PACK_NAME
    assert loop.run_until_complete(env.nodes.load_custom_node(str(pack_dir))), "our pack failed to load"
    env.base, env.extra_root, env.loop = base, extra_root, loop
    env.pack = sys.modules[env.nodes.NODE_CLASS_MAPPINGS["GPENLoadModel"].__module__.rsplit(".", 2)[0]]
    env.common = sys.modules[env.pack.__name__ + ".nodes.common"]
    yield env
    env.mm.unload_all_models()
    asyncio.set_event_loop(None)
    loop.close()
    # ComfyUI's modules stay imported; at least later imports resolve as before
    for entry in (str(comfy_tree), str(comfy_tree / "comfy")):
        while entry in sys.path:
            sys.path.remove(entry)


def install_or_skip(label: str) -> harness.ComfyInstall:
    install = harness.comfy_install(label)
    if install.missing:
        pytest.skip(install.missing)
    return install


# The server tests run on both ComfyUI versions (0.33.0 with the frontend it pins: the server does
# not use it); the editor tests (test_frontend.py) also on the newest frontend, see its `editor` fixture.
@pytest.fixture(scope="session", params=harness.INSTALL_LABELS[:2])
def server(request, tmp_path_factory):
    """A real ComfyUI server (main.py --cpu) with the fixture model and a corrupt one installed."""
    install = install_or_skip(request.param)
    base = harness.make_base(tmp_path_factory.mktemp("comfy_server"))
    harness.put_model(base / "models" / "facerestore", "GPEN-tiny-64.pth")
    harness.write_corrupt_model(base / "models" / "facerestore", "GPEN-broken.pth")
    srv = harness.ComfyServer.of(install, base).start()
    try:
        yield srv.wait_ready()
    finally:
        srv.stop()
