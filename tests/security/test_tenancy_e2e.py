"""Tenancy end to end, with real requests from another Unix user of the same machine.

Root serves a LocalCluster (process runtime, one node, a SQLite store in a folder every user may
enter) over HTTPS and makes two tenants with `nbkube tenant create`. A fresh Unix user (`nbkt-XXXX`,
made with useradd for this module and removed at its end) owns alice's kubeconfig and nothing else,
and then, as that user:

- an anonymous request to the API server gets 401, a request to the node agent 401;
- the admin's kubeconfig, the CA key, the store and bob's kubeconfig cannot even be opened;
- the real kubectl (1.32, 1.33, 1.28 and 1.27) with alice's kubeconfig creates a Pod that meets the
  `restricted` level in `alice` (no resources named: the LimitRange's defaults fit the quota), is
  Forbidden in `bob`, answers `auth can-i create pods` yes in alice and no in bob, has a
  hostPath and a privileged pod refused with the PodSecurity reason, and can neither bind
  `cluster-admin` in `alice` nor relabel the namespace out of `restricted`.

The official Python client loads alice's kubeconfig unchanged. (The process runtime refuses
seccomp RuntimeDefault when it starts such a pod, as host processes cannot be confined: admission
is what is tested here, so the pods' objects are checked, not their processes.)
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import tempfile
import textwrap
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from nbkube.apiserver import ApiServer, serve
from nbkube.cli import main
from nbkube.cluster import LocalCluster
from nbkube.node.agentserver import ENDPOINT_ANNOTATION

pytestmark = pytest.mark.slow

KUBECTLS = {
    "1.32": "/usr/bin/kubectl",
    "1.33": "/usr/lib/google-cloud-sdk/bin/kubectl.1.33",
    "1.28": "/usr/lib/google-cloud-sdk/bin/kubectl.1.28",
    "1.27": "/usr/lib/google-cloud-sdk/bin/kubectl.1.27",
}
PYTHON = "/usr/bin/python3"  # the venv's interpreter may sit in root's home, closed to the user


@dataclass
class Setup:
    cluster: LocalCluster
    api: ApiServer
    shared: Path
    admin_kubeconfig: Path
    alice_kubeconfig: Path
    bob_kubeconfig: Path
    user: str
    uid: int
    gid: int
    home: Path


def _useradd(shared: Path) -> tuple[str, Path]:
    name = f"nbkt-{uuid.uuid4().hex[:8]}"
    home = shared / name
    subprocess.run(
        [
            "useradd",
            "--no-create-home",
            "--home-dir",
            str(home),
            "--shell",
            "/usr/sbin/nologin",
            "--user-group",
            name,
        ],
        check=True,
        capture_output=True,
        timeout=30,
    )
    return name, home


@pytest.fixture(scope="module")
def setup() -> Iterator[Setup]:
    if os.geteuid() != 0:
        pytest.skip("needs root: to add a Unix user and run its requests as that user")
    missing = [p for p in (PYTHON, shutil.which("useradd") or "useradd") if not os.path.exists(p)]
    if missing:
        pytest.skip(f"missing on this machine: {', '.join(missing)}")
    # a folder every user may enter, as /home or /tmp: only the cluster's own modes protect it
    shared = Path(tempfile.mkdtemp(prefix="nbk-tenancy-"))
    os.chmod(shared, 0o755)
    user, home = _useradd(shared)
    try:
        entry = pwd.getpwnam(user)
        home.mkdir(mode=0o700)
        os.chown(home, entry.pw_uid, entry.pw_gid)
        folder = shared / "cluster"
        with LocalCluster(
            nodes=1, runtime="process", store="sqlite", data_dir=str(folder), name="tenancy"
        ) as cluster:
            api = serve(cluster)
            try:
                admin = Path(api.write_kubeconfig(str(folder / "kubeconfig")))
                alice, bob = home / "alice.kubeconfig", shared / "bob.kubeconfig"
                for name, path in (("alice", alice), ("bob", bob)):
                    assert main(["--kubeconfig", str(admin), "tenant", "create", name, "-o", str(path)]) == 0
                os.chown(alice, entry.pw_uid, entry.pw_gid)  # alice's kubeconfig is the user's
                yield Setup(cluster, api, shared, admin, alice, bob, user, entry.pw_uid, entry.pw_gid, home)
            finally:
                api.stop()
    finally:
        subprocess.run(["userdel", user], capture_output=True, timeout=30)
        shutil.rmtree(shared, ignore_errors=True)


def _as_user(
    s: Setup, argv: list[str], stdin: str | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    def drop() -> None:
        os.setgroups([])
        os.setgid(s.gid)
        os.setuid(s.uid)

    return subprocess.run(
        argv,
        input=stdin,
        preexec_fn=drop,  # noqa: PLW1509 - the point: the child runs as the other user
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=str(s.home),
        env={"HOME": str(s.home), "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
    )


_PROBE = textwrap.dedent(
    """
    import json, os, ssl, sys, urllib.error, urllib.request
    api, agent, paths = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    out = {"uid": os.getuid()}
    for path in paths:
        try:
            open(path, "rb").read()
            out[path] = "read"
        except OSError as exc:
            out[path] = type(exc).__name__
    def status(req):
        try:
            ctx = ssl._create_unverified_context()  # anonymous: no CA to verify with, no credential
            return urllib.request.urlopen(req, timeout=10, context=ctx).status
        except urllib.error.HTTPError as exc:
            return exc.code
    out["api"] = status(urllib.request.Request(api + "/api/v1/namespaces/alice/pods"))
    out["agent"] = status(urllib.request.Request(
        f"http://{agent}/exec/alice/p/c", data=b'{"argv": ["id"]}', headers={"Content-Type": "application/json"}
    ))
    print(json.dumps(out))
    """
)


def test_the_other_user_reaches_nothing_without_a_credential(setup: Setup) -> None:
    s = setup
    node = s.cluster.api.get("Node", "node-1")
    agent = node["metadata"]["annotations"][ENDPOINT_ANNOTATION]
    folder = Path(s.cluster.data_dir)
    closed = [s.admin_kubeconfig, folder / "pki" / "ca.key", folder / "store.db", s.bob_kubeconfig]
    paths = [str(p) for p in (*closed, s.alice_kubeconfig)]
    done = _as_user(s, [PYTHON, "-I", "-c", _PROBE, s.api.url, agent, json.dumps(paths)])
    assert done.returncode == 0, done.stderr
    seen: dict[str, Any] = json.loads(done.stdout)
    assert seen["uid"] == s.uid
    for path in closed:
        assert seen[str(path)] == "PermissionError", path
    assert seen[str(s.alice_kubeconfig)] == "read"
    assert seen["api"] == 401
    assert seen["agent"] == 401
    # bob's kubeconfig is 0600 root's: its modes, not just its folder, keep it closed
    assert oct(os.stat(s.bob_kubeconfig).st_mode & 0o777) == "0o600"


def _pod(name: str, *, volumes: list[Any] | None = None, privileged: bool = False) -> dict[str, Any]:
    container: dict[str, Any] = {
        "name": "c",
        "image": "busybox",
        "command": ["sleep", "3600"],
        "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
    }
    if privileged:  # (validation refuses privileged together with allowPrivilegeEscalation false)
        container["securityContext"] = {"privileged": True, "capabilities": {"drop": ["ALL"]}}
    spec: dict[str, Any] = {
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": 1000,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [container],
    }
    if volumes:
        spec["volumes"] = volumes
        container["volumeMounts"] = [{"name": v["name"], "mountPath": f"/mnt/{v['name']}"} for v in volumes]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}


@pytest.mark.parametrize("version", list(KUBECTLS))
def test_alice_with_the_real_kubectl(setup: Setup, version: str) -> None:
    s = setup
    binary = KUBECTLS[version]
    assert os.path.exists(binary), f"no kubectl {version} at {binary}: these machines ship it"

    def kubectl(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return _as_user(s, [binary, "--kubeconfig", str(s.alice_kubeconfig), *args], stdin=stdin)

    tag = version.replace(".", "-")
    # kubectl before 1.30 validates a create against /openapi/v2 (served as protobuf), later ones
    # ask the server to (fieldValidation)
    create = ["create", "-f", "-"]
    ok = kubectl(*create, stdin=json.dumps(_pod(f"ok-{tag}")))
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.strip() == f"pod/ok-{tag} created"
    pod = s.cluster.api.get("Pod", f"ok-{tag}", "alice")
    assert pod["spec"]["containers"][0]["resources"] == {
        "limits": {"cpu": "500m", "memory": "256Mi"},
        "requests": {"cpu": "100m", "memory": "128Mi"},
    }

    other = kubectl(*create, "-n", "bob", stdin=json.dumps(_pod(f"in-bob-{tag}")))
    assert other.returncode == 1
    assert other.stderr.startswith("Error from server (Forbidden): ")
    assert (
        'pods is forbidden: User "alice" cannot create resource "pods" in API group "" in the namespace "bob"'
        in other.stderr
    )
    listing = kubectl("get", "pods", "-n", "bob")
    assert listing.returncode == 1 and "(Forbidden)" in listing.stderr

    yes = kubectl("auth", "can-i", "create", "pods", "-n", "alice")
    assert (yes.returncode, yes.stdout.strip()) == (0, "yes")
    no = kubectl("auth", "can-i", "create", "pods", "-n", "bob")
    assert (no.returncode, no.stdout.strip()) == (1, "no")

    host = kubectl(
        *create, stdin=json.dumps(_pod(f"root-{tag}", volumes=[{"name": "root", "hostPath": {"path": "/"}}]))
    )
    assert host.returncode == 1
    assert f'pods "root-{tag}" is forbidden: violates PodSecurity "restricted:latest": ' in host.stderr
    # restricted's volume check stands in for baseline's hostPath one, as upstream
    assert 'restricted volume types (volume "root" uses restricted volume type "hostPath")' in host.stderr
    priv = kubectl(*create, stdin=json.dumps(_pod(f"priv-{tag}", privileged=True)))
    assert priv.returncode == 1
    assert f'pods "priv-{tag}" is forbidden: violates PodSecurity "restricted:latest": ' in priv.stderr
    assert 'privileged (container "c" must not set securityContext.privileged=true)' in priv.stderr
    # no way out of the fence: binding cluster-admin in her namespace, relabelling it
    esc = kubectl("create", "rolebinding", f"esc-{tag}", "--clusterrole=cluster-admin", "--user=alice")
    assert esc.returncode == 1
    assert "is attempting to grant RBAC permissions not currently held" in esc.stderr
    relabel = kubectl("label", "namespace", "alice", "pod-security.kubernetes.io/enforce=privileged", "--overwrite")
    assert relabel.returncode == 1 and "(Forbidden)" in relabel.stderr
    names = {p["metadata"]["name"] for p in s.cluster.api.list("Pod", "")[0]}
    assert f"ok-{tag}" in names and not {f"in-bob-{tag}", f"root-{tag}", f"priv-{tag}"} & names


def test_the_python_client_with_alices_kubeconfig_unchanged(setup: Setup) -> None:
    from kubernetes import client, config
    from kubernetes.client.rest import ApiException

    s = setup
    api_client = config.new_client_from_config(config_file=str(s.alice_kubeconfig))
    try:
        core = client.CoreV1Api(api_client)
        made = core.create_namespaced_pod("alice", _pod("from-python"))
        assert made.metadata.namespace == "alice"
        assert "from-python" in {p.metadata.name for p in core.list_namespaced_pod("alice").items}
        with pytest.raises(ApiException) as refused:
            core.list_namespaced_pod("bob")
        assert refused.value.status == 403
    finally:
        api_client.close()
    # load_kube_config, as a script does, sets the default client from the same file
    config.load_kube_config(config_file=str(s.alice_kubeconfig))
    core = client.CoreV1Api()
    assert core.read_namespaced_pod("from-python", "alice").spec.security_context.run_as_user == 1000
