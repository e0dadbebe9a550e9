"""binder/ as repo2docker (mybinder.org) reads it: the Python it picks, the apt packages, postBuild.

repo2docker looks only in binder/ when that folder exists (never both binder/ and .binder/); with a
requirements.txt there it uses its Python build pack, which takes the Python version from
runtime.txt (`python-X.Y`) and ignores pyproject.toml's `requires-python`; an environment.yml
would switch to conda and ignore runtime.txt. apt.txt is one package a line (blank lines and `#`
comments skipped), installed as root; postBuild then runs from the repository root as the notebook
user (`chmod +x binder/postBuild && ./binder/postBuild`). The last test runs postBuild for real,
in a copy of the checkout, with a fresh virtual environment's `python` first on PATH.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest
from nbk_install import INSTALL_TIMEOUT, REPO, clean_env, copy_checkout, fresh_venv, site_packages

BINDER = REPO / "binder"
DEBIAN_NAME = re.compile(r"^[a-z0-9][a-z0-9+.-]+$")


def repo2docker_python() -> tuple[int, int]:
    """The Python repo2docker's Python build pack installs for this repository (runtime.txt)."""
    runtime = (BINDER / "runtime.txt").read_text().strip()
    match = re.fullmatch(r"python-(\d+)\.(\d+)", runtime)
    assert match, f"binder/runtime.txt must read python-X.Y, got {runtime!r}"
    return int(match.group(1)), int(match.group(2))


def requires_python() -> tuple[int, int]:
    with open(REPO / "pyproject.toml", "rb") as fh:
        spec = tomllib.load(fh)["project"]["requires-python"]
    match = re.fullmatch(r">=\s*(\d+)\.(\d+)", spec)
    assert match, f"requires-python {spec!r}: this test reads only the form >=X.Y"
    return int(match.group(1)), int(match.group(2))


def apt_packages() -> list[str]:
    lines = (BINDER / "apt.txt").read_text().splitlines()
    return [ln.strip() for ln in lines if ln.strip() and not ln.strip().startswith("#")]


def test_binder_folder_selects_the_python_build_pack() -> None:
    assert BINDER.is_dir() and not (REPO / ".binder").exists()
    assert (BINDER / "requirements.txt").is_file()
    # these would pick another build pack or override runtime.txt's Python
    for other in ("environment.yml", "Pipfile", "Pipfile.lock", "pyproject.toml", "setup.py", "Dockerfile"):
        assert not (BINDER / other).exists(), f"binder/{other} would change how repo2docker builds"


def test_runtime_txt_pins_a_python_that_nbkube_supports() -> None:
    assert repo2docker_python() >= requires_python()
    assert repo2docker_python()[0] == 3


def test_apt_txt_lists_busybox_and_etcd_for_the_rootless_cluster() -> None:
    packages = apt_packages()
    assert all(DEBIAN_NAME.match(p) for p in packages), packages
    # the process runtime runs the host's busybox; store "auto" launches a private etcd
    assert {"busybox-static", "etcd-server"} <= set(packages)


def test_postbuild_is_an_executable_bash_script_that_stops_on_errors() -> None:
    script = BINDER / "postBuild"
    text = script.read_text()
    assert os.access(script, os.X_OK)
    assert text.startswith("#!/usr/bin/env bash\n")
    assert "\nset -euo pipefail\n" in text
    installs = [ln for ln in text.splitlines() if "pip install" in ln and not ln.lstrip().startswith("#")]
    assert installs == ["python -m pip install --no-cache-dir ."]  # the checkout, not editable


@pytest.mark.slow
def test_postbuild_installs_nbkube_so_the_notebooks_folder_can_use_it(tmp_path: Path) -> None:
    busybox, etcd = shutil.which("busybox"), shutil.which("etcd")
    assert busybox and etcd, "this machine lacks busybox or etcd (apt-get install busybox-static etcd-server)"
    repo = copy_checkout(tmp_path / "repo")
    python = fresh_venv(tmp_path / "venv")
    home = tmp_path / "home"
    home.mkdir()
    path = os.pathsep.join(
        [str(python.parent), os.path.dirname(busybox), os.path.dirname(etcd), "/usr/bin", "/bin"]
    )
    done = subprocess.run(
        ["./binder/postBuild"],
        cwd=repo,
        env=clean_env(PATH=path, HOME=str(home)),
        capture_output=True,
        text=True,
        timeout=INSTALL_TIMEOUT,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    installed = site_packages(python)
    assert (installed / "nbkube" / "examples" / "rootless" / "web-rc.yaml").is_file()
    assert not list(installed.glob("__editable__*")), "postBuild must not install editable"
    # a notebook's kernel starts in notebooks/: nbkube and its manifests come from the install
    probe = subprocess.run(
        [
            str(python),
            "-c",
            "import nbkube, nbkube.examples as e; print(nbkube.__file__); print(e.path('nginx-rc.yaml'))",
        ],
        cwd=repo / "notebooks",
        env=clean_env(HOME=str(home)),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    module, manifest = probe.stdout.split()
    assert module.startswith(str(installed)) and manifest.startswith(str(installed))
