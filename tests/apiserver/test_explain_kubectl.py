"""The real kubectl, every version on this machine, against the OpenAPI and discovery documents:
`api-resources` and `api-versions` (aggregated discovery), `explain` (v3 schemas; v2 through
kubectl 1.28's `--output=plaintext-openapiv2`), and kubectl 1.28's `apply`/`diff`/`create`, which
load /openapi/v2 before anything else and compute apply's patch from its definitions.

Each kubectl call is bounded by a subprocess timeout. Versions that are not installed are not
parametrized; a test that needs kubectl 1.28 itself is skipped only when that binary is absent.
"""

from __future__ import annotations

import copy
import glob
import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
from nbk_apitest import EXAMPLES, KUBECTL

from nbkube.api.kinds import KINDS
from nbkube.apiserver import ApiServer, openapi, serve
from nbkube.apiserver.conversion import CONVERTED
from nbkube.apiserver.routing import METRICS_KINDS, REVIEW_KINDS
from nbkube.registry.registry import Registry
from nbkube.store import open_store

pytestmark = pytest.mark.slow

_SDK = "/usr/lib/google-cloud-sdk/bin"


def _binaries() -> dict[str, str]:
    """version label -> kubectl binary: the SDK's versioned ones and the one on PATH."""
    out = {os.path.basename(p).removeprefix("kubectl."): p for p in sorted(glob.glob(f"{_SDK}/kubectl.1.*"))}
    if KUBECTL is not None:
        out["path"] = KUBECTL
    return out


BINARIES = _binaries()
KUBECTL_128 = BINARIES.get("1.28")


class Runner:
    """One kubectl binary against the module's server, in its own HOME (its own discovery cache)."""

    def __init__(self, binary: str, kubeconfig: str, home: str):
        self.binary = binary
        self.kubeconfig = kubeconfig
        self.env = {**os.environ, "HOME": home, "KUBECONFIG": kubeconfig}

    def __call__(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [self.binary, "--kubeconfig", self.kubeconfig, *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
            env=self.env,
            cwd=EXAMPLES,
        )

    def ok(self, *args: str, stdin: str | None = None) -> str:
        proc = self(*args, stdin=stdin)
        assert proc.returncode == 0, f"{self.binary} {' '.join(args)}: {proc.stderr}"
        return proc.stdout


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ApiServer, str]]:
    folder = tmp_path_factory.mktemp("explain")
    registry = Registry(open_store("sqlite://:memory:"))
    server = serve(registry, folder=str(folder / "pki"))
    try:
        yield server, server.write_kubeconfig(str(folder / "kubeconfig"))
    finally:
        server.stop()
        registry.close()


def _runner(served: tuple[ApiServer, str], binary: str, tmp_path: Any) -> Runner:
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    return Runner(binary, served[1], str(home))


@pytest.fixture(params=sorted(BINARIES))
def kubectl(request: pytest.FixtureRequest, served: tuple[ApiServer, str], tmp_path: Any) -> Runner:
    return _runner(served, BINARIES[request.param], tmp_path)


@pytest.fixture
def kubectl128(served: tuple[ApiServer, str], tmp_path: Any) -> Runner:
    assert KUBECTL_128 is not None, f"kubectl 1.28 is not installed in {_SDK}: these machines ship it"
    return _runner(served, KUBECTL_128, tmp_path)


def test_api_resources(kubectl: Runner) -> None:
    out = kubectl.ok("api-resources")
    rows = [line.split() for line in out.splitlines()[1:]]
    expected = []
    for info in (*KINDS, *REVIEW_KINDS, *METRICS_KINDS):
        short = [",".join(info.short_names)] if info.short_names else []
        expected.append([info.plural, *short, info.api_version, str(info.namespaced).lower(), info.kind])
    assert sorted(rows) == sorted(expected)
    wide = kubectl.ok("api-resources", "-o", "wide", "--api-group=")
    pods = next(line for line in wide.splitlines() if line.startswith("pods "))
    # the verbs column: `[create delete ...]`, or comma-separated before kubectl 1.28
    verbs = re.search(r"\[?(create[ ,]delete[ ,]deletecollection[ ,]get[ ,]list[ ,]patch[ ,]update[ ,]watch)\]?", pods)
    assert verbs is not None and pods.split()[-1] == "all", pods
    cluster = kubectl.ok("api-resources", "--namespaced=false", "-o", "name").split()
    assert set(cluster) == {
        f"{i.plural}.{i.group}" if i.group else i.plural
        for i in (*KINDS, *REVIEW_KINDS, *METRICS_KINDS)
        if not i.namespaced
    }


def test_api_versions(kubectl: Runner) -> None:
    out = kubectl.ok("api-versions").split()
    # autoscaling/v1 is served by conversion beside the stored autoscaling/v2
    served = {i.api_version for i in (*KINDS, *REVIEW_KINDS, *METRICS_KINDS, *(c.info for c in CONVERTED))}
    assert out == sorted(served)


def test_explain_container_ports(kubectl: Runner) -> None:
    out = kubectl.ok("explain", "pod.spec.containers.ports")
    assert re.search(r"containerPort\s+<integer> -required-", out), out
    assert re.search(r"protocol\s+<string>", out) and re.search(r"hostIP\s+<string>", out)
    assert "Number of the port to expose on the pod's IP address" in out


def test_explain_recursive(kubectl: Runner) -> None:
    out = kubectl.ok("explain", "deployment.spec", "--recursive")
    for field in ("maxUnavailable", "livenessProbe", "initialDelaySeconds", "matchExpressions", "runAsNonRoot"):
        assert re.search(rf"^\s+{field}\s+<", out, re.MULTILINE), field
    rolling = kubectl.ok("explain", "deployment.spec.strategy.rollingUpdate")
    assert re.search(r"maxSurge\s+<IntOrString>", rolling), rolling
    resources = kubectl.ok("explain", "pod.spec.containers.resources")
    assert re.search(r"limits\s+<map\[string\]Quantity>", resources), resources
    rbac = kubectl.ok("explain", "clusterrolebinding.roleRef")
    assert re.search(r"kind\s+<string> -required-", rbac)
    sa = kubectl.ok("explain", "serviceaccount.imagePullSecrets")
    assert re.search(r"name\s+<string>", sa)


def test_explain_unknown_field_fails(kubectl: Runner) -> None:
    proc = kubectl("explain", "pod.spec.nosuchfield")
    assert proc.returncode != 0 and "nosuchfield" in proc.stderr


def test_explain_from_openapi_v2(kubectl128: Runner) -> None:
    # kubectl 1.28 reads the protobuf /openapi/v2 for this output format
    out = kubectl128.ok("explain", "pod.spec.containers.ports", "--output=plaintext-openapiv2")
    assert re.search(r"containerPort\s+<integer> -required-", out), out
    assert "A network port in a single container." in out


_MANIFESTS = ("nginx-rc.yaml", "nginx-service.yaml", "rootless/web-rc.yaml", "rootless/web-service.yaml")


def test_apply_and_diff_on_kubectl_128(kubectl128: Runner) -> None:
    args = [a for m in _MANIFESTS for a in ("-f", m)]
    out = kubectl128.ok("apply", "--validate=true", *args)
    assert "replicationcontroller/nginx-test-controller created" in out
    assert "service/nginx-http-service created" in out
    again = kubectl128.ok("apply", *args)
    assert "replicationcontroller/nginx-test-controller unchanged" in again
    assert kubectl128("diff", *args).returncode == 0  # nothing to change
    with open(os.path.join(EXAMPLES, "nginx-rc.yaml")) as f:
        changed = f.read().replace("replicas: 5", "replicas: 3").replace("containerPort: 80", "containerPort: 8080")
    diff = kubectl128("diff", "-f", "-", stdin=changed)
    assert diff.returncode == 1, diff.stderr  # 1: differences found
    assert "-  replicas: 5" in diff.stdout and "+  replicas: 3" in diff.stdout
    assert "+        - containerPort: 8080" in diff.stdout
    assert "configured" in kubectl128.ok("apply", "-f", "-", stdin=changed)
    ports = kubectl128.ok(
        "get", "rc", "nginx-test-controller", "-o", "jsonpath={.spec.replicas} {.spec.template.spec.containers[0].ports}"
    )
    # the strategic merge patch from the v2 definitions deleted port 80 by its merge key
    assert ports == '3 [{"containerPort":8080,"protocol":"TCP"}]'


def _without_field_validation(group_version: str) -> bytes | None:
    """A v3 document whose operations do not offer `fieldValidation`, as an older API server's."""
    doc = copy.deepcopy(openapi.group_version_doc(group_version))
    if doc is None:
        return None
    for item in doc["paths"].values():
        for op in item.values():
            op["parameters"] = [p for p in op["parameters"] if p["name"] != "fieldValidation"]
    return json.dumps(doc).encode()


_DEPLOYMENT = """apiVersion: apps/v1
kind: Deployment
metadata: {name: client-validated}
spec:
  replicas: 1
  selector: {matchLabels: {app: cv}}
  strategy: {rollingUpdate: {maxSurge: 1, maxUnavailable: "25%"}}
  template:
    metadata: {labels: {app: cv}}
    spec:
      securityContext: {runAsUser: 1000}
      affinity:
        nodeAffinity:
          requiredDuringSchedulingIgnoredDuringExecution:
            nodeSelectorTerms: [{matchExpressions: [{key: k, operator: In, values: [v]}]}]
      containers:
      - name: c
        image: busybox
        resources: {limits: {cpu: 1, memory: 128Mi}}
        livenessProbe: {httpGet: {port: 80}}
        ports: [{containerPort: 80}]
      volumes: [{name: v, emptyDir: {}}]
"""


def test_client_side_validation_against_the_v2_schema(
    kubectl128: Runner, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    # without `fieldValidation` on the server, kubectl 1.28 validates against /openapi/v2 itself
    monkeypatch.setattr(openapi, "group_version_json", _without_field_validation)
    registry = Registry(open_store("sqlite://:memory:"))
    server = serve(registry, folder=str(tmp_path / "pki2"))
    try:
        runner = _runner((server, server.write_kubeconfig(str(tmp_path / "kubeconfig2"))), kubectl128.binary, tmp_path)
        args = [a for m in _MANIFESTS for a in ("-f", m)]
        assert "created" in runner.ok("apply", "--validate=strict", *args)
        runner.ok("create", "--validate=strict", "--dry-run=server", "-f", "-", stdin=_DEPLOYMENT)
        bad = _DEPLOYMENT.replace("runAsUser:", "runAsUserr:")
        proc = runner("create", "--validate=strict", "--dry-run=server", "-f", "-", stdin=bad)
        assert proc.returncode == 1
        assert 'unknown field "runAsUserr" in io.k8s.api.core.v1.PodSecurityContext' in proc.stderr, proc.stderr
    finally:
        server.stop()
        registry.close()


_BAD = """apiVersion: apps/v1
kind: Deployment
metadata: {name: strict-web}
spec:
  replicas: 1
  selector: {matchLabels: {app: strict-web}}
  template:
    metadata: {labels: {app: strict-web}}
    spec:
      containers: [{name: c, image: "nginx:1", imagePullPolicyy: Always}]
"""


@pytest.mark.parametrize("verb", ["apply", "create"])
def test_validate_strict_names_the_unknown_field(kubectl: Runner, verb: str) -> None:
    proc = kubectl(verb, "--validate=strict", "-f", "-", stdin=_BAD)
    assert proc.returncode == 1
    assert "imagePullPolicyy" in proc.stderr, proc.stderr
    assert kubectl("get", "deployment", "strict-web").returncode == 1  # nothing was created
    good = _BAD.replace("imagePullPolicyy", "imagePullPolicy").replace("strict-web", f"strict-{verb}")
    kubectl.ok(verb, "--validate=strict", "-f", "-", stdin=good)
    kubectl.ok("delete", "deployment", f"strict-{verb}")


def test_binaries_found() -> None:
    # the parametrized tests above run once per binary found; on a machine with kubectl, at least one
    if shutil.which("kubectl") is not None:
        assert BINARIES
