"""Fixtures of the robustness suite.

The node cases need the in-process ComfyUI of tests/comfy. ComfyUI can be imported only
once per process (its folder_paths and args are module state), so when tests/comfy
already started it in this session (a whole-suite run collects tests/comfy first) the
same instance is reused; run alone, this suite starts it the same way.
"""
from __future__ import annotations

import asyncio
import importlib.util
import sys
import types
import uuid
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
COMFY_TESTS = HERE.parent / "comfy"
for _path in (HERE, COMFY_TESTS):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

import comfy_harness as harness  # noqa: E402


# --------------------------------------------------------------------------- ComfyUI in-process


def _comfy_conftest():
    spec = importlib.util.spec_from_file_location("gpen_comfy_tests_conftest", COMFY_TESTS / "conftest.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _running_comfy():
    """The ComfyUI tests/comfy already imported in this process, or None."""
    nodes = sys.modules.get("nodes")
    if nodes is None or not hasattr(nodes, "load_custom_node") or "GPENLoadModel" not in nodes.NODE_CLASS_MAPPINGS:
        return None
    from comfy.cli_args import args
    import comfy.model_management as mm
    import comfy.utils
    import execution
    import folder_paths
    import server

    base = Path(args.base_directory)
    env = types.SimpleNamespace(args=args, folder_paths=folder_paths, mm=mm, utils=comfy.utils, server=server,
                                nodes=nodes, execution=execution, base=base, extra_root=base / "extra_models",
                                loop=server.PromptServer.instance.loop)
    return env


@pytest.fixture(scope="session")
def comfy(tmp_path_factory):
    env = _running_comfy()
    owned = env is None
    if owned:
        base = harness.make_base(tmp_path_factory.mktemp("robust_comfy"))
        env = _comfy_conftest()._import_comfy(harness.ensure_comfy_tree(), base)
        env.base, env.extra_root = base, base / "extra_models"
        env.loop = asyncio.new_event_loop()
        asyncio.set_event_loop(env.loop)
        env.server.PromptServer(env.loop)
        pack_dir = base / "custom_nodes" / harness.PACK_NAME
        assert env.loop.run_until_complete(env.nodes.load_custom_node(str(pack_dir))), "our pack failed to load"
    env.pack = sys.modules[env.nodes.NODE_CLASS_MAPPINGS["GPENLoadModel"].__module__.rsplit(".", 2)[0]]
    env.common = sys.modules[env.pack.__name__ + ".nodes.common"]
    harness.put_model(env.base / "models" / "facerestore", "GPEN-robust-64.pth")  # the s64 fixture model
    env.run = lambda graph: run_prompt(env, graph)
    yield env
    if owned:
        env.mm.unload_all_models()
        asyncio.set_event_loop(None)
        env.loop.close()


def run_prompt(env, graph: dict) -> dict:
    """Validate and execute `graph` the way the server does, in this process.

    Returns {"status": "success" | "error" | "interrupted" | "invalid" (no output left to run),
    "error": the execution_error message or the validation error, "node_errors": validation
    errors per node, "outputs": the UI outputs}."""
    prompt_id = uuid.uuid4().hex
    valid, error, outputs, node_errors = env.loop.run_until_complete(
        env.execution.validate_prompt(prompt_id, graph, None))
    if not valid:
        return {"status": "invalid", "error": error, "node_errors": node_errors, "outputs": {}}
    # Outputs whose nodes failed validation are dropped and the rest runs, as the server does.
    executor = env.execution.PromptExecutor(env.server.PromptServer.instance, cache_type=False,
                                            cache_args={"lru": 0, "ram": 0})
    env.loop.run_until_complete(executor.execute_async(graph, prompt_id, {}, outputs))
    kinds = {kind: data for kind, data in executor.status_messages}
    status = ("success" if "execution_success" in kinds else
              "interrupted" if "execution_interrupted" in kinds else "error")
    return {"status": status, "error": kinds.get("execution_error"), "node_errors": node_errors,
            "outputs": executor.history_result["outputs"]}
