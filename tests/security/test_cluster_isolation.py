"""A cluster on a shared machine is its owner's alone, end to end (LocalCluster as `nbkube up` runs it).

- Secrets written every way there is (the Registry, `apply` with its last-applied annotation,
  `nbkube apply`, a kubectl-style POST through the API server) are found in no file of the cluster's
  folder, the private etcd's data included, neither plain nor in base64;
- the folder is 0700 and what it holds 0600 (the etcd data 0700);
- another Unix user (`nobody`, through os.setuid in the child) cannot connect to the private etcd,
  read the store, the keys or the agent credential, and the node agent answers it 401.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import stat
import subprocess
import tempfile
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from nbkube.apiserver import serve
from nbkube.cli import main
from nbkube.client.kubeconfig import load_kubeconfig
from nbkube.client.rest import RestClient
from nbkube.cluster import LocalCluster
from nbkube.node.agentserver import ENDPOINT_ANNOTATION
from nbkube.registry.registry import LAST_APPLIED

pytestmark = pytest.mark.slow

PLAIN = "tr0ub4dor-" + uuid.uuid4().hex
B64 = base64.b64encode(PLAIN.encode()).decode()
NEEDLES = [PLAIN.encode(), B64.encode(), B64[4:-4].encode()]


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A folder every user may enter (as /home or /tmp are): only the cluster's own modes protect it
    (pytest's tmp_path is inside a 0700 folder, which would hide everything for the wrong reason)."""
    folder = Path(tempfile.mkdtemp(prefix="nbk-iso-"))
    os.chmod(folder, 0o755)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _secret(name: str, **extra: object) -> dict[str, object]:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": "default"}, **extra}


def _write_secrets_every_way(cluster: LocalCluster, folder: Path) -> None:
    cluster.api.create(_secret("by-registry", data={"password": B64}))
    cluster.api.apply([_secret("by-apply", stringData={"password": PLAIN})])
    manifest = folder.parent / f"{uuid.uuid4().hex}.yaml"
    manifest.write_text(json.dumps(_secret("by-cli", data={"password": B64})))
    try:
        assert main(["--store", cluster.store_url, "apply", "-f", str(manifest)]) == 0
    finally:
        manifest.unlink()
    # what `kubectl apply` sends: the manifest, data included, in the last-applied annotation
    posted = _secret("by-kubectl", data={"password": B64})
    posted["metadata"] = {
        "name": "by-kubectl",
        "namespace": "default",
        "annotations": {LAST_APPLIED: json.dumps(_secret("by-kubectl", data={"password": B64}))},
    }
    api = serve(cluster)
    try:
        client = RestClient(load_kubeconfig(api.write_kubeconfig(str(folder.parent / f"{uuid.uuid4().hex}.kubeconfig"))))
        client.create(posted)  # through HTTPS as the admin, as kubectl would post it
    finally:
        api.stop()
    for name in ("by-registry", "by-apply", "by-cli", "by-kubectl"):
        secret = cluster.api.get("Secret", name, "default")
        assert secret["data"] == {"password": B64}, name
        assert B64 not in (secret["metadata"].get("annotations") or {}).get(LAST_APPLIED, ""), name


def _assert_private(folder: Path, etcd: bool) -> None:
    def mode(p: Path) -> int:
        return stat.S_IMODE(os.stat(p).st_mode)

    assert mode(folder) == 0o700
    names = ["cluster.json", "encryption-config.yaml"] + ([] if etcd else ["store.db", "store.db-wal"])
    for name in names:
        assert mode(folder / name) == 0o600, name
    if etcd:
        assert mode(folder / "etcd") == 0o700


@pytest.mark.parametrize("store", ["sqlite", pytest.param("auto", marks=pytest.mark.etcd)])
def test_no_secret_reaches_any_file_of_the_cluster(
    shared_dir: Path, store: str, request: pytest.FixtureRequest
) -> None:
    if store == "auto":
        request.getfixturevalue("etcd_binary")  # "auto" must mean the private etcd here
    folder = shared_dir / "c"
    with LocalCluster(nodes=0, runtime="sim", store=store, data_dir=str(folder), name="iso") as cluster:
        assert cluster.store_kind == ("etcd-private" if store == "auto" else "sqlite")
        _write_secrets_every_way(cluster, folder)
        _assert_private(folder, etcd=store == "auto")
    files = [p for p in folder.rglob("*") if p.is_file()]
    assert any("etcd" in p.parts or p.name == "store.db" for p in files)
    for path in files:
        content = path.read_bytes()
        assert not any(n in content for n in NEEDLES), f"{path} holds the secret"


_CHILD = textwrap.dedent(
    """
    import json, os, socket, sys, urllib.error, urllib.request
    folder, agent = sys.argv[1], sys.argv[2]
    out = {"uid": os.getuid()}
    def attempt(name, fn):
        try:
            fn()
            out[name] = "ok"
        except OSError as exc:
            out[name] = type(exc).__name__
    attempt("list-folder", lambda: os.listdir(folder))
    for name in ("store.db", "encryption-config.yaml", "agent-credential", "cluster.json", "etcd"):
        path = os.path.join(folder, name)
        attempt("read:" + name, lambda: os.listdir(path) if os.path.isdir(path) else open(path, "rb").read())
    def connect():
        with socket.socket(socket.AF_UNIX) as s:
            s.connect(os.path.join(folder, "etcd.sock:2379"))
    attempt("connect-etcd", connect)
    req = urllib.request.Request(
        f"http://{agent}/exec/default/p/c", data=b'{"argv": ["id"]}', headers={"Content-Type": "application/json"}
    )
    if agent:
        try:
            urllib.request.urlopen(req, timeout=10)
            out["agent"] = 200
        except urllib.error.HTTPError as exc:
            out["agent"] = exc.code
    print(json.dumps(out))
    """
)


def _as_nobody(folder: Path, agent: str) -> dict[str, object]:
    def drop() -> None:
        os.setgroups([])
        os.setgid(65534)
        os.setuid(65534)

    done = subprocess.run(
        ["/usr/bin/python3", "-I", "-c", _CHILD, str(folder), agent],
        preexec_fn=drop,  # noqa: PLW1509 - the point: the child runs as another user
        capture_output=True,
        text=True,
        timeout=60,
        cwd="/",
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, object] = json.loads(done.stdout)
    return result


@pytest.mark.etcd
def test_another_user_reaches_nothing(shared_dir: Path, etcd_binary: None) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root, to run a child as the user nobody")
    if not os.path.exists("/usr/bin/python3"):
        pytest.skip("no /usr/bin/python3 for the child (the venv's interpreter may sit in root's home)")
    folder = shared_dir / "c"
    # a file beside the cluster that anyone may read: the child does get this far
    (shared_dir / "public").write_text("hello")
    os.chmod(shared_dir / "public", 0o644)
    with LocalCluster(nodes=1, runtime="process", store="auto", data_dir=str(folder), name="iso") as cluster:
        node = cluster.api.get("Node", "node-1")
        agent = node["metadata"]["annotations"][ENDPOINT_ANNOTATION]
        seen = _as_nobody(folder, agent)
        assert seen["uid"] == 65534
        assert seen["list-folder"] == "PermissionError"
        for name in ("encryption-config.yaml", "agent-credential", "cluster.json", "etcd"):
            assert seen[f"read:{name}"] == "PermissionError", name
        assert seen["connect-etcd"] == "PermissionError"
        assert seen["agent"] == 401
        # the files' own modes hold even in a folder opened by mistake
        os.chmod(folder, 0o755)
        try:
            seen = _as_nobody(folder, agent)
        finally:
            os.chmod(folder, 0o700)
        assert seen["list-folder"] == "ok"
        for name in ("encryption-config.yaml", "agent-credential", "cluster.json", "etcd"):
            assert seen[f"read:{name}"] == "PermissionError", name
        assert seen["connect-etcd"] == "PermissionError"  # the socket is not writable by others
        assert seen["agent"] == 401
    with LocalCluster(nodes=0, runtime="sim", store="sqlite", data_dir=str(shared_dir / "s"), name="s"):
        os.chmod(shared_dir / "s", 0o755)
        seen = _as_nobody(shared_dir / "s", "")
        assert seen["list-folder"] == "ok" and seen["read:store.db"] == "PermissionError"
