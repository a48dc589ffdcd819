"""install.py run for real, in fresh virtual environments, against a local HTTP server."""
from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import os
import random
import shutil
import socket
import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path

import pytest

from fixture_files import S256_MODEL_FILE
from helpers.http_model_server import ModelServer, Route

ROOT = Path(__file__).resolve().parents[1]
INSTALL = ROOT / "install.py"
PAYLOAD = random.Random(7).randbytes(200_000)
GPEN_256 = S256_MODEL_FILE.read_bytes()  # a real GPEN-256 layout: what GPEN-BFR-256.pth must be
SHARED_SITE = sysconfig.get_paths()["purelib"]  # the shared .venv running these tests


def load_install_module():
    spec = importlib.util.spec_from_file_location("gpen_install_under_test", INSTALL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def clean_env(**extra: str) -> dict:
    env = {k: v for k, v in os.environ.items()
           if k not in {"GPEN_MODEL_URL_BASE", "GPEN_AUTO_DOWNLOAD", "COMFYUI_PATH", "PYTHONPATH",
                        "http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"}}
    env["NO_PROXY"] = "127.0.0.1,localhost"
    env.update(extra)
    return env


def make_venv(folder: Path, *, link_shared: bool) -> Path:
    """A fresh venv; with link_shared its site-packages also sees the shared .venv's."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder)], check=True)
    python = folder / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    if link_shared:
        site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                              check=True, capture_output=True, text=True).stdout.strip()
        Path(site, "gpen_shared_venv.pth").write_text(SHARED_SITE + "\n")
    return python


def own_site_entries(python: Path) -> set[str]:
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    return {p.name for p in Path(site).iterdir()}


def run_install(python: Path, *args: str, cwd: Path = ROOT, script: Path = INSTALL, **env: str):
    return subprocess.run([str(python), str(script), *args], cwd=cwd, env=clean_env(**env),
                          capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def linked_venv(tmp_path_factory) -> Path:
    return make_venv(tmp_path_factory.mktemp("linked") / "venv", link_shared=True)


@pytest.fixture(scope="module")
def bare_venv(tmp_path_factory) -> Path:
    # No torch, numpy, packaging, tqdm or pip: install.py must still run here.
    return make_venv(tmp_path_factory.mktemp("bare") / "venv", link_shared=False)


@pytest.fixture
def server():
    with ModelServer() as srv:
        yield srv


@pytest.fixture
def empty_requirements(tmp_path) -> Path:
    path = tmp_path / "empty-requirements.txt"
    path.write_text("# nothing\n")
    return path


# --------------------------------------------------------------------------- requirements


def test_offline_with_everything_satisfied_installs_nothing_and_prints_the_hint(linked_venv, tmp_path):
    before = own_site_entries(linked_venv)
    models = tmp_path / "models"
    # Run from elsewhere: requirements.txt must be found next to the script.
    result = run_install(linked_venv, "--offline", "--models-dir", str(models), cwd=tmp_path)

    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "all requirements in requirements.txt are already satisfied; nothing to install." in out
    assert "running:" not in out  # pip was never started
    assert own_site_entries(linked_venv) == before
    assert "https://public-vigen-video.oss-cn-shanghai.aliyuncs.com/robin/models/GPEN-BFR-512.pth" in out
    assert f"put it in: {models}" in out and "non-commercial" in out
    assert not models.exists() or not any(models.iterdir())

    imported = subprocess.run([str(linked_venv), "-c", "import gpen_arch, gpen_pipeline"], cwd=ROOT,
                              env=clean_env(), capture_output=True, text=True)
    assert imported.returncode == 0, imported.stderr


def test_install_script_imports_neither_torch_nor_numpy(linked_venv, tmp_path):
    probe = textwrap.dedent(f"""
        import runpy, sys
        sys.argv = ["install.py", "--offline", "--models-dir", {str(tmp_path)!r}]
        try:
            runpy.run_path({str(INSTALL)!r}, run_name="__main__")
        except SystemExit as stop:
            assert stop.code == 0, stop.code
        print("heavy:", sorted(m for m in ("torch", "numpy", "cv2") if m in sys.modules))
    """)
    result = subprocess.run([str(linked_venv), "-c", probe], cwd=ROOT, env=clean_env(),
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "heavy: []" in result.stdout


def test_torch_and_numpy_are_never_changed(linked_venv, tmp_path):
    reqs = tmp_path / "requirements.txt"
    reqs.write_text("torch>=999\nnumpy<1.0\ntorchvision ; python_version < '3'\n")
    result = run_install(linked_venv, "--offline", "--requirements", str(reqs), "--models-dir", str(tmp_path / "m"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "running:" not in result.stdout
    assert "note: torch" in result.stdout and "left as it is" in result.stdout
    assert "note: numpy" in result.stdout


@pytest.fixture(scope="module")
def dummy_wheelhouse(tmp_path_factory) -> Path:
    """A local wheel of a tiny package that is installed nowhere yet."""
    src = tmp_path_factory.mktemp("dummy_src")
    (src / "pyproject.toml").write_text(textwrap.dedent("""
        [build-system]
        requires = ["setuptools"]
        build-backend = "setuptools.build_meta"

        [project]
        name = "gpen-dummy-req"
        version = "0.1.0"

        [tool.setuptools]
        py-modules = ["gpen_dummy_req"]
    """))
    (src / "gpen_dummy_req.py").write_text("MARK = 'gpen dummy'\n")
    wheels = tmp_path_factory.mktemp("wheels")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-build-isolation", "--no-deps", "--no-index",
                    "-q", "-w", str(wheels), str(src)], check=True, capture_output=True, env=clean_env())
    assert list(wheels.glob("gpen_dummy_req-0.1.0-*.whl"))
    return wheels


def test_unsatisfied_requirement_is_installed_into_the_running_python(linked_venv, dummy_wheelhouse, tmp_path):
    with pytest.raises(importlib.metadata.PackageNotFoundError):
        importlib.metadata.version("gpen-dummy-req")  # not in the shared venv
    reqs = tmp_path / "requirements.txt"
    reqs.write_text("gpen-dummy-req>=0.1  # tiny\ntqdm>=4\n")
    args = ("--offline", "--requirements", str(reqs), "--find-links", str(dummy_wheelhouse), "--no-index",
            "--models-dir", str(tmp_path / "m"))

    first = run_install(linked_venv, *args)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "installing: gpen-dummy-req>=0.1" in first.stdout
    assert "tqdm" not in first.stdout.split("installing:")[1].splitlines()[0]

    where = subprocess.run(
        [str(linked_venv), "-c",
         "import importlib.metadata as m, gpen_dummy_req; print(m.version('gpen-dummy-req')); "
         "print(gpen_dummy_req.__file__)"],
        env=clean_env(), capture_output=True, text=True, check=True).stdout.split()
    assert where[0] == "0.1.0"
    assert Path(where[1]).resolve().is_relative_to(linked_venv.parent.parent.resolve())
    with pytest.raises(importlib.metadata.PackageNotFoundError):
        importlib.metadata.version("gpen-dummy-req")  # the shared venv stayed untouched

    again = run_install(linked_venv, *args)
    assert again.returncode == 0 and "nothing to install" in again.stdout and "running:" not in again.stdout


def test_failing_optional_backend_warns_but_failing_required_package_fails(linked_venv, tmp_path):
    empty = tmp_path / "no-wheels"
    empty.mkdir()
    reqs = tmp_path / "requirements.txt"
    reqs.write_text("insightface>=999\n")
    optional = run_install(linked_venv, "--offline", "--requirements", str(reqs), "--no-index",
                           "--find-links", str(empty), "--models-dir", str(tmp_path / "m"), PIP_FIND_LINKS="")
    assert optional.returncode == 0, optional.stdout + optional.stderr
    assert "WARNING: optional backend 'insightface>=999' did not install" in optional.stdout
    assert "pip install" in optional.stdout

    reqs.write_text("gpen-no-such-package-xyz>=1\n")
    required = run_install(linked_venv, "--offline", "--requirements", str(reqs), "--no-index",
                           "--find-links", str(empty), "--models-dir", str(tmp_path / "m"), PIP_FIND_LINKS="")
    assert required.returncode == 1
    assert "ERROR: could not install gpen-no-such-package-xyz>=1" in required.stdout
    # The model hint is still printed after a package failure.
    assert "GPEN-BFR-512.pth" in required.stdout


def test_requirement_parsing_understands_markers_extras_and_equivalent_builds():
    install = load_install_module()
    required, optional, notes = install.plan_requirements([
        "tqdm>=4",                                # satisfied
        "opencv-python-headless>=4",              # satisfied by opencv-python
        "tqdm>=999",                              # too old
        "pytest[gpen-no-such-extra]",             # unknown extra adds nothing
        "gpen-absent-pkg ; python_version >= '3'",
        "gpen-absent-old ; python_version < '3'",  # marker false: skipped
        "facexlib>=999",
    ])
    assert required == ["tqdm>=999", "gpen-absent-pkg ; python_version >= '3'"]
    assert optional == ["facexlib>=999"] and notes == []


# --------------------------------------------------------------------------- models folder


def test_models_folder_is_found_from_custom_nodes(bare_venv, tmp_path, empty_requirements):
    pack = tmp_path / "ComfyUI" / "custom_nodes" / "gpen-pack"
    (pack / "gpen_pipeline").mkdir(parents=True)
    shutil.copy(INSTALL, pack / "install.py")
    for name in ("catalog.py", "download.py", "transfer.py"):
        shutil.copy(ROOT / "gpen_pipeline" / name, pack / "gpen_pipeline" / name)
    result = run_install(bare_venv, "--offline", "--requirements", str(empty_requirements),
                         cwd=pack, script=pack / "install.py")
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"model folder: {tmp_path / 'ComfyUI' / 'models' / 'facerestore'}" in result.stdout


def test_models_folder_order_of_precedence(tmp_path, monkeypatch):
    install = load_install_module()
    monkeypatch.delenv("COMFYUI_PATH", raising=False)
    monkeypatch.chdir(tmp_path)
    script_dir = tmp_path / "Comfy" / "custom_nodes" / "pack"
    assert install.find_models_dir(None, tmp_path / "loose") == tmp_path / "models" / "facerestore"
    assert install.find_models_dir(None, script_dir) == tmp_path / "Comfy" / "models" / "facerestore"
    monkeypatch.setenv("COMFYUI_PATH", str(tmp_path))
    assert install.find_models_dir(None, script_dir) == tmp_path.resolve() / "models" / "facerestore"
    assert install.find_models_dir(str(tmp_path / "x"), script_dir) == (tmp_path / "x").resolve()


# --------------------------------------------------------------------------- --download


def test_download_writes_a_checked_model_atomically_and_checks_it_again_on_a_rerun(linked_venv, server, tmp_path):
    server.serve("/GPEN-BFR-256.pth", Route(body=GPEN_256))
    models = tmp_path / "models"
    result = run_install(linked_venv, "--download", "--model", "GPEN-BFR-256.pth", "--models-dir", str(models),
                         "--requirements", str(tmp_path / "absent.txt"), GPEN_MODEL_URL_BASE=server.url_base)
    assert result.returncode == 0, result.stdout + result.stderr
    digest = hashlib.sha256(GPEN_256).hexdigest()
    assert (models / "GPEN-BFR-256.pth").read_bytes() == GPEN_256
    assert (models / "GPEN-BFR-256.pth.sha256").read_text().split()[0] == digest
    assert sorted(p.name for p in models.iterdir()) == ["GPEN-BFR-256.pth", "GPEN-BFR-256.pth.sha256"]
    assert f"sha256 {digest}" in result.stdout and server.requests == ["/GPEN-BFR-256.pth"]

    again = run_install(linked_venv, "--download", "--model", "GPEN-BFR-256.pth", "--models-dir", str(models),
                        "--requirements", str(tmp_path / "absent.txt"), GPEN_MODEL_URL_BASE=server.url_base)
    assert again.returncode == 0 and "already in" in again.stdout and len(server.requests) == 1
    assert f"checked {models / 'GPEN-BFR-256.pth'}: it is GPEN-BFR-256.pth" in again.stdout


def test_a_file_already_there_that_is_no_model_is_reported_not_kept_quietly(linked_venv, server, tmp_path):
    models = tmp_path / "models"
    models.mkdir()
    (models / "GPEN-BFR-256.pth").write_bytes(PAYLOAD)  # e.g. what an older version saved from a bad mirror
    server.serve("/GPEN-BFR-256.pth", Route(body=GPEN_256))
    result = run_install(linked_venv, "--download", "--model", "GPEN-BFR-256.pth", "--models-dir", str(models),
                         "--requirements", str(tmp_path / "absent.txt"), GPEN_MODEL_URL_BASE=server.url_base)
    assert result.returncode == 1
    errors = error_lines(result.stdout)
    assert len(errors) == 1 and "not a usable GPEN-BFR-256.pth" in errors[0] and "delete" in errors[0]
    assert (models / "GPEN-BFR-256.pth").read_bytes() == PAYLOAD and server.requests == []


def test_without_torch_a_file_without_published_hash_is_refused(bare_venv, server, tmp_path, empty_requirements):
    # Only reading it as a GPEN could tell it from whatever the server sent, and that needs torch.
    server.serve("/GPEN-BFR-256.pth", Route(body=GPEN_256))
    models = tmp_path / "models"
    result = run_install(bare_venv, "--download", "--model", "GPEN-BFR-256.pth", "--models-dir", str(models),
                         "--requirements", str(empty_requirements), GPEN_MODEL_URL_BASE=server.url_base)
    assert result.returncode == 1
    errors = error_lines(result.stdout)
    assert len(errors) == 1 and "GPEN-BFR-256.pth has no published hash" in errors[0]
    assert "needs torch" in errors[0] and "install ComfyUI's requirements first" in errors[0]
    assert list(models.iterdir()) == []


def error_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if "ERROR:" in line]


def test_download_refuses_a_truncated_response(bare_venv, server, tmp_path, empty_requirements):
    server.serve("/GPEN-BFR-256.pth", Route(body=PAYLOAD, send_bytes=150_000))
    models = tmp_path / "models"
    result = run_install(bare_venv, "--download", "--model", "GPEN-BFR-256.pth", "--models-dir", str(models),
                         "--requirements", str(empty_requirements), GPEN_MODEL_URL_BASE=server.url_base)
    assert result.returncode == 1
    errors = error_lines(result.stdout)
    assert len(errors) == 1 and "150000 of 200000" in errors[0] and "GPEN-BFR-256.pth" in errors[0]
    assert list(models.iterdir()) == []


def test_download_refuses_a_wrong_size_for_the_catalogued_model(linked_venv, server, tmp_path):
    server.serve("/GPEN-BFR-512.pth", Route(body=PAYLOAD))  # the real file has 284085738 bytes
    models = tmp_path / "models"
    result = run_install(linked_venv, "--download", "--models-dir", str(models),
                         GPEN_MODEL_URL_BASE=server.url_base)
    assert result.returncode == 1
    errors = error_lines(result.stdout)
    assert len(errors) == 1 and "284085738" in errors[0]
    assert list(models.iterdir()) == []


def test_download_when_offline_fails_and_says_to_retry_once_the_server_can_be_reached(bare_venv, tmp_path,
                                                                                      empty_requirements):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    models = tmp_path / "models"
    result = run_install(bare_venv, "--download", "--models-dir", str(models), "--timeout", "2",
                         "--requirements", str(empty_requirements),
                         GPEN_MODEL_URL_BASE=f"http://127.0.0.1:{port}")
    assert result.returncode == 1, result.stdout + result.stderr
    out = result.stdout
    assert f"get it from: http://127.0.0.1:{port}/GPEN-BFR-512.pth" in out and f"put it in: {models}" in out
    assert f"install.py --download' again once 127.0.0.1:{port} can be reached from this machine." in out
    assert "or run:" not in out  # not the plain advice to run what just failed
    assert "Errno" not in out
    assert not models.exists() or list(models.iterdir()) == []


def test_without_download_the_hint_names_the_command_that_downloads(bare_venv, tmp_path, empty_requirements):
    result = run_install(bare_venv, "--models-dir", str(tmp_path / "models"), "--requirements",
                         str(empty_requirements), cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    # Runnable from anywhere: this Python and the script by their full paths.
    assert f"or run: {bare_venv} {INSTALL} --download" in result.stdout


def test_unknown_model_name_is_refused(bare_venv, server, tmp_path, empty_requirements):
    result = run_install(bare_venv, "--download", "--model", "../GPEN-BFR-512.pth",
                         "--models-dir", str(tmp_path / "m"), "--requirements", str(empty_requirements),
                         GPEN_MODEL_URL_BASE=server.url_base)
    assert result.returncode == 2 and "choose one of" in result.stdout
    assert server.requests == [] and not (tmp_path / "m").exists()


def test_manager_env_picks_the_folder_but_downloads_only_when_opted_in(linked_venv, server, tmp_path):
    comfy = tmp_path / "ComfyUI"
    comfy.mkdir()
    server.serve("/GPEN-BFR-256.pth", Route(body=GPEN_256))
    models = comfy / "models" / "facerestore"
    common = ("--model", "GPEN-BFR-256.pth", "--requirements", str(tmp_path / "absent.txt"))

    plain = run_install(linked_venv, *common, COMFYUI_PATH=str(comfy), GPEN_MODEL_URL_BASE=server.url_base)
    assert plain.returncode == 0, plain.stdout + plain.stderr
    assert server.requests == [] and f"put it in: {models}" in plain.stdout

    opted = run_install(linked_venv, *common, COMFYUI_PATH=str(comfy), GPEN_MODEL_URL_BASE=server.url_base,
                        GPEN_AUTO_DOWNLOAD="1")
    assert opted.returncode == 0, opted.stdout + opted.stderr
    assert (models / "GPEN-BFR-256.pth").read_bytes() == GPEN_256
    assert "1.09M" in opted.stdout or "1.09M" in opted.stderr  # tqdm's bar, in MiB

    offline = run_install(linked_venv, *common, "--offline", COMFYUI_PATH=str(comfy),
                          GPEN_MODEL_URL_BASE=server.url_base, GPEN_AUTO_DOWNLOAD="1")
    assert offline.returncode == 0 and len(server.requests) == 1
