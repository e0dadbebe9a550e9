"""`nbkube tenant create|kubeconfig|list|delete`, over a cluster's store and through its API server.

The cluster is a real LocalCluster (simulated nodes, a SQLite file in tmp) so that its folder holds
the keys, the PKI and `apiserver.json` exactly as a served cluster's does. What a tenant's
credential may then do (and not do) against the real kubectl, as another Unix user, is
tests/security/test_tenancy_e2e.py.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from nbk_clitest import Result, Run

from nbkube.apiserver import ApiServer, serve
from nbkube.client.apiserverinfo import API_INFO_FILE, running_api_server
from nbkube.client.kubeconfig import load_kubeconfig
from nbkube.client.rest import RestClient
from nbkube.client.tenants import TENANT_LABEL, check_tenant_name, tenant_objects
from nbkube.cluster import LocalCluster
from nbkube.errors import BadRequest, Forbidden
from nbkube.registry.registry import AUTO_NAMESPACES

TENANT_KINDS = ["Namespace", "ResourceQuota", "LimitRange", "NetworkPolicy", "RoleBinding", "ServiceAccount"]


@pytest.fixture
def cluster(store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalCluster]:
    # conftest's store_url made HOME a scratch folder; the commands here name their store or kubeconfig
    monkeypatch.delenv("NBKUBE_STORE", raising=False)
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    with LocalCluster(nodes=1, runtime="sim", store="sqlite", data_dir=str(tmp_path / "c"), name="ten") as c:
        yield c


@pytest.fixture
def served(cluster: LocalCluster) -> Iterator[ApiServer]:
    api = serve(cluster)
    try:
        yield api
    finally:
        api.stop()


@pytest.fixture
def run(cluster: LocalCluster, nbkube: Run) -> Run:
    """`nbkube --store <the cluster's store> ...`"""

    def call(*argv: str) -> Result:
        return nbkube("--store", cluster.store_url, *argv)

    return call


def _tenant_state(cluster: LocalCluster, name: str) -> dict[str, list[str]]:
    """Every object of the tenant kinds in namespace `name` (and the namespace itself), by kind."""
    found: dict[str, list[str]] = {}
    for kind in TENANT_KINDS:
        ns = "" if kind == "Namespace" else name
        items = cluster.api.list(kind, ns)[0]
        names = sorted(
            o["metadata"]["name"] for o in items if kind != "Namespace" or o["metadata"]["name"] == name
        )
        if kind == "ServiceAccount":
            names = [n for n in names if n != "default"]  # the ServiceAccount controller's
        if names:
            found[kind] = names
    return found


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_create_over_the_store_without_a_server_makes_the_objects_and_says_how_to_get_the_kubeconfig(
    cluster: LocalCluster, run: Run, tmp_path: Path
) -> None:
    done = run("tenant", "create", "alice", "--cpu", "1", "--memory", "1Gi", "--pods", "4")
    assert done.code == 0, done.err
    assert done.err_lines == [
        "no kubeconfig written: no API server has served this cluster yet (its CA is made then); once one "
        "runs (nbkube up --api-port 0, or serve(cluster)): nbkube tenant kubeconfig alice"
    ]
    assert "namespace/alice created" in done.out and done.out.rstrip().endswith("tenant/alice created")
    assert not (tmp_path / "alice.kubeconfig").exists()
    assert _tenant_state(cluster, "alice") == {
        "Namespace": ["alice"],
        "ResourceQuota": ["tenant-quota"],
        "LimitRange": ["tenant-limits"],
        "NetworkPolicy": ["allow-dns", "allow-same-namespace", "default-deny"],
        "RoleBinding": ["alice-admin"],
    }
    ns = cluster.api.get("Namespace", "alice")
    labels = ns["metadata"]["labels"]
    assert labels[TENANT_LABEL] == "alice"
    for mode in ("enforce", "warn", "audit"):
        assert labels[f"pod-security.kubernetes.io/{mode}"] == "restricted"
    quota = cluster.api.get("ResourceQuota", "tenant-quota", "alice")
    assert quota["spec"]["hard"] == {
        "pods": "4",
        "requests.cpu": "1",
        "requests.memory": "1Gi",
        "limits.cpu": "1",
        "limits.memory": "1Gi",
    }
    limits = cluster.api.get("LimitRange", "tenant-limits", "alice")["spec"]["limits"][0]
    assert limits["default"] == {"cpu": "500m", "memory": "256Mi"}
    assert limits["defaultRequest"] == {"cpu": "100m", "memory": "128Mi"}
    binding = cluster.api.get("RoleBinding", "alice-admin", "alice")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": "admin",
    }
    assert binding["subjects"] == [{"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": "alice"}]
    deny = cluster.api.get("NetworkPolicy", "default-deny", "alice")["spec"]
    assert deny == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}

    # once a server runs, the kubeconfig: a certificate of the cluster CA (this process reads pki/)
    api = serve(cluster)
    try:
        assert running_api_server(cluster.data_dir) == api.url
        done = run("tenant", "kubeconfig", "alice")
        assert done.code == 0, done.err
        path = tmp_path / "alice.kubeconfig"
        assert (
            f"kubeconfig {path} written (client certificate CN=alice of the cluster CA; server {api.url})"
            in done.out
        )
        assert _mode(path) == 0o600
        target = load_kubeconfig(str(path))
        assert (target.server, target.namespace, target.token) == (api.url, "alice", None)
        assert target.cert_pem is not None
        alice = RestClient(target)
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "p"},
            "spec": {
                "securityContext": {
                    "runAsNonRoot": True,
                    "runAsUser": 1000,
                    "seccompProfile": {"type": "RuntimeDefault"},
                },
                "containers": [
                    {
                        "name": "c",
                        "image": "busybox",
                        "securityContext": {
                            "allowPrivilegeEscalation": False,
                            "capabilities": {"drop": ["ALL"]},
                        },
                    }
                ],
            },
        }
        created = alice.create(pod)  # into the kubeconfig's namespace, with the LimitRange's defaults
        assert created["metadata"]["namespace"] == "alice"
        assert created["spec"]["containers"][0]["resources"]["limits"] == {"cpu": "500m", "memory": "256Mi"}
        with pytest.raises(Forbidden):
            alice.list("Pod", "default")
        alice.close()
    finally:
        api.stop()
    assert not (Path(cluster.data_dir) / API_INFO_FILE).exists()  # the record goes with the server


def test_create_through_the_api_with_a_token_and_list_and_delete(
    cluster: LocalCluster, served: ApiServer, nbkube: Run, tmp_path: Path
) -> None:
    admin = served.write_kubeconfig(str(tmp_path / "admin.kubeconfig"))  # outside the cluster folder
    out = tmp_path / "kc" / "bob.yaml"
    done = nbkube("--kubeconfig", admin, "tenant", "create", "bob", "-o", str(out), "--pods", "3")
    assert done.code == 0, done.err
    # no readable PKI found from this kubeconfig: the API server issues a ServiceAccount token
    assert (
        f"kubeconfig {out} written (token of ServiceAccount bob/bob, valid 48 h; server {served.url})"
        in done.out
    )
    assert "serviceaccount/bob -n bob created" in done.out
    assert _tenant_state(cluster, "bob")["RoleBinding"] == ["bob-admin", "bob-serviceaccount-admin"]
    assert _mode(out) == 0o600 and _mode(out.parent) == 0o700
    doc = yaml.safe_load(out.read_text())
    assert doc["users"][0]["name"] == "system:serviceaccount:bob:bob" and doc["users"][0]["user"]["token"]
    bob = RestClient(load_kubeconfig(str(out)))
    assert bob.list("Pod", "bob")[0] == []
    with pytest.raises(Forbidden):
        bob.list("Secret", "default")
    with pytest.raises(Forbidden):  # the admin role cannot change its namespace's labels
        bob.patch(
            "Namespace",
            "bob",
            "",
            {"metadata": {"labels": {"pod-security.kubernetes.io/enforce": "privileged"}}},
        )
    bob.close()
    # with the admin kubeconfig in the cluster's folder, the PKI is found: a certificate
    admin_in_folder = served.write_kubeconfig(os.path.join(cluster.data_dir, "kubeconfig"))
    done = nbkube(
        "--kubeconfig", admin_in_folder, "tenant", "create", "carol", "-o", str(tmp_path / "carol.kc")
    )
    assert done.code == 0, done.err
    assert "client certificate CN=carol of the cluster CA" in done.out
    done = nbkube("--kubeconfig", admin, "tenant", "list")
    assert done.code == 0, done.err
    lines = done.out.splitlines()
    assert lines[0].split() == [
        "NAME",
        "STATUS",
        "PODS",
        "CPU",
        "REQ",
        "CPU",
        "LIM",
        "MEM",
        "REQ",
        "MEM",
        "LIM",
        "AGE",
    ]
    assert [line.split()[0] for line in lines[1:]] == ["bob", "carol"]
    assert lines[1].split()[2].endswith("/3")
    done = nbkube("--kubeconfig", admin, "tenant", "delete", "bob")
    assert done.code == 0, done.err
    assert done.out.splitlines()[:3] == [
        "rolebinding/bob-admin -n bob deleted",
        "rolebinding/bob-serviceaccount-admin -n bob deleted",
        "namespace/bob deleted",
    ]
    assert [
        line.split()[0] for line in nbkube("--kubeconfig", admin, "tenant", "list").out.splitlines()[1:]
    ] == ["carol"]
    done = nbkube("--kubeconfig", admin, "tenant", "delete", "default")
    assert (done.code, done.err_lines) == (
        1,
        ["error: tenant name 'default': a system namespace's name; choose another"],
    )


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["Alice"], "error: tenant name 'Alice': a lowercase RFC 1123 label must consist of lower case"),
        (["a" * 64], "error: tenant name '" + "a" * 64 + "': must be no more than 63 characters"),
        (["kube-tenant"], "error: tenant name 'kube-tenant': a system namespace's name"),
        (["kubernetes-admin"], "error: tenant name 'kubernetes-admin': the cluster admin's user name"),
        (["alice", "--cpu", "lots"], "error: --cpu: invalid quantity 'lots'"),
        (["alice", "--memory", "0"], "error: --memory 0: must be more than 0"),
        (["alice", "--pods", "0"], "error: --pods: must be a whole number of at least 1, got 0"),
        (
            ["alice", "--credential", "token"],
            "error: --credential token: a ServiceAccount token is issued by the API server",
        ),
    ],
)
def test_bad_input_is_one_line_and_nothing_is_made(
    cluster: LocalCluster, run: Run, argv: list[str], message: str
) -> None:
    def made() -> set[str]:
        # the system namespaces appear on their own (default with the first object written to it)
        return {n["metadata"]["name"] for n in cluster.api.list("Namespace")[0]} - AUTO_NAMESPACES

    before = made()
    done = run("tenant", "create", *argv)
    assert done.code == 1 and len(done.err_lines) == 1, done.err
    assert done.err_lines[0].startswith(message)
    assert done.out == ""
    assert made() == before


def test_an_existing_namespace_is_left_alone(cluster: LocalCluster, run: Run) -> None:
    cluster.api.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "dora"}})
    done = run("tenant", "create", "dora")
    assert (done.code, done.err_lines) == (
        1,
        ['error: namespace "dora" already exists: tenant dora not created'],
    )
    assert _tenant_state(cluster, "dora") == {"Namespace": ["dora"]}
    done = run("tenant", "delete", "dora")
    assert (done.code, done.err_lines) == (
        1,
        [f"error: namespace 'dora' is not a tenant's (no label {TENANT_LABEL}=dora)"],
    )
    assert _tenant_state(cluster, "dora") == {"Namespace": ["dora"]}


def test_a_failure_after_the_objects_deletes_them_again(
    cluster: LocalCluster, served: ApiServer, run: Run, tmp_path: Path
) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    done = run("tenant", "create", "erin", "-o", str(blocker / "erin.kubeconfig"))
    assert done.code == 1 and len(done.err_lines) == 1, done.err
    assert "not-a-folder" in done.err_lines[0]
    assert _tenant_state(cluster, "erin") == {}
    # and the name is free for a create that works
    done = run("tenant", "create", "erin", "-o", str(tmp_path / "erin.kubeconfig"))
    assert done.code == 0, done.err
    assert _tenant_state(cluster, "erin")["Namespace"] == ["erin"]


def test_cluster_tenants_in_a_notebook(cluster: LocalCluster, served: ApiServer, tmp_path: Path) -> None:
    result = cluster.tenants.create("fay", kubeconfig=str(tmp_path / "fay.kubeconfig"))
    assert result.objects[0] == ("Namespace", "fay") and ("RoleBinding", "fay-admin") in result.objects
    assert result.kubeconfig == str(tmp_path / "fay.kubeconfig")
    assert result.credential == "client certificate CN=fay of the cluster CA"
    page = result._repr_html_()
    assert "<td>ResourceQuota</td><td>tenant-quota</td><td>fay</td>" in page
    assert f"<td>kubeconfig</td><td>{tmp_path / 'fay.kubeconfig'}</td>" in page
    assert [t.name for t in cluster.tenants.list()] == ["fay"]
    assert cluster.tenants.delete("fay")[-1] == ("Namespace", "fay")
    assert cluster.tenants.list() == []


def test_tenant_objects_clamp_the_defaults_to_a_small_quota() -> None:
    objs: dict[str, Any] = {o["kind"]: o for o in tenant_objects("gil", cpu="200m", memory="64Mi", pods=1)}
    limits = objs["LimitRange"]["spec"]["limits"][0]
    assert limits["default"] == {"cpu": "200m", "memory": "64Mi"}
    assert limits["defaultRequest"] == {"cpu": "100m", "memory": "64Mi"}
    with pytest.raises(BadRequest):
        check_tenant_name("")


def test_a_baseline_tenant_for_the_process_runtime(cluster: LocalCluster, run: Run) -> None:
    done = run("tenant", "create", "hal", "--pod-security", "baseline")
    assert done.code == 0, done.err
    labels = cluster.api.get("Namespace", "hal")["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "baseline"
    assert labels["pod-security.kubernetes.io/warn"] == "restricted"
    plain = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "plain", "namespace": "hal"},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]},
    }
    assert cluster.api.create(plain)["metadata"]["name"] == "plain"  # no seccomp profile needed
    plain["metadata"]["name"] = "host"
    plain["spec"]["volumes"] = [{"name": "root", "hostPath": {"path": "/"}}]
    with pytest.raises(Forbidden, match=r'violates PodSecurity "baseline:latest": hostPath volumes'):
        cluster.api.create(plain)
    done = run("tenant", "create", "ida", "--pod-security", "privileged")
    assert done.code == 2 and "invalid choice: 'privileged'" in done.err
