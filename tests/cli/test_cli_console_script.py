"""The installed `nbkube` console script (a real subprocess), and the CLI against a real etcd."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from nbk_clitest import RC_YAML, SVC_YAML, Run

from nbkube.store.etcd_server import etcd_available, launch_etcd


def _nbkube_exe() -> str:
    beside = Path(sys.executable).parent / "nbkube"
    if beside.exists():
        return str(beside)
    found = shutil.which("nbkube")
    if not found:
        pytest.fail("the nbkube console script is not installed: run `pip install -e .` first")
    return found


def test_console_script_applies_and_gets(tmp_path: Path) -> None:
    env = dict(os.environ, HOME=str(tmp_path), NBKUBE_STORE=f"sqlite://{tmp_path / 'cs.db'}")
    exe = _nbkube_exe()

    def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run([exe, *args], env=env, capture_output=True, text=True, input=stdin, timeout=60)

    r = run("apply", "-f", "-", stdin=Path(RC_YAML).read_text() + "---\n" + Path(SVC_YAML).read_text())
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == [
        "replicationcontroller/nginx-test-controller created",
        "service/nginx-http-service created",
    ]
    r = run("get", "rc,svc")
    assert r.returncode == 0
    assert "replicationcontroller/nginx-test-controller" in r.stdout
    assert "8000:30001/TCP" in r.stdout
    bad = run("get", "nonsense")
    assert bad.returncode == 1
    assert bad.stderr.strip().startswith("error: ")
    assert len(bad.stderr.strip().splitlines()) == 1


def test_console_script_quiet_on_a_closed_pipe(tmp_path: Path) -> None:
    env = dict(os.environ, HOME=str(tmp_path), NBKUBE_STORE=f"sqlite://{tmp_path / 'cs.db'}")
    proc = subprocess.Popen(
        [_nbkube_exe(), "api-resources"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.readline()
    proc.stdout.close()  # like `| head -1`: the reader goes away
    err = proc.stderr.read()
    proc.stderr.close()
    proc.wait(timeout=60)
    assert "Traceback" not in err


@pytest.fixture
def etcd_store(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    given = os.environ.get("NBKUBE_TEST_ETCD")
    if given:
        yield given
        return
    if not etcd_available():
        message = "no etcd binary on PATH and NBKUBE_TEST_ETCD is not set"
        if os.environ.get("NBKUBE_REQUIRE_ETCD") == "1":
            pytest.fail(f"NBKUBE_REQUIRE_ETCD=1 but {message}")
        pytest.skip(message)
    with launch_etcd() as server:
        yield server.url


@pytest.mark.etcd
def test_apply_get_delete_on_real_etcd(nbkube: Run, etcd_store: str, tmp_path: Path) -> None:
    # a namespace of our own: a shared etcd (NBKUBE_TEST_ETCD) may hold other tests' objects
    ns = f"cli-{uuid.uuid4().hex[:8]}"
    manifest = tmp_path / "m.yaml"
    rc = (
        Path(RC_YAML)
        .read_text()
        .replace("  name: nginx-test-controller\n", f"  name: nginx-test-controller\n  namespace: {ns}\n")
    )
    manifest.write_text(f"apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {ns}\n---\n{rc}")
    r = nbkube("apply", "-f", str(manifest), "--store", etcd_store)
    assert r.code == 0, r.err
    assert r.out.splitlines() == [
        f"namespace/{ns} created",
        "replicationcontroller/nginx-test-controller created",
    ]
    assert nbkube("--store", etcd_store, "apply", "-f", str(manifest)).out.splitlines() == [
        f"namespace/{ns} unchanged",
        "replicationcontroller/nginx-test-controller unchanged",
    ]
    got = nbkube("--store", etcd_store, "get", "rc", "-n", ns)
    assert "nginx-test-controller" in got.out
    assert nbkube("--store", etcd_store, "delete", "rc", "nginx-test-controller", "-n", ns).code == 0
    assert nbkube("--store", etcd_store, "delete", "ns", ns).code == 0
