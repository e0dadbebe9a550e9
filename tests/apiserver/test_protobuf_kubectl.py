"""kubectl's typed generators (protobuf requests and responses) against a served cluster, with the real
kubectl 1.32 and 1.33; the schema table checked against the descriptors kubectl itself carries (it is
what scripts/gen_protobuf_schema.py makes of them, and Google's protobuf runtime parses what nbkube
encodes); the official Python client still served JSON."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import time
import zlib
from collections.abc import Iterator
from typing import Any

import pytest
from nbk_apitest import Kubectl, served_sim

from nbkube.apiserver import ApiServer, protobuf
from nbkube.apiserver.protobuf_schema import KINDS

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")
SDK = "/usr/lib/google-cloud-sdk/bin"
KUBECTL_132 = shutil.which("kubectl")  # /usr/bin/kubectl is 1.32
KUBECTL_133 = os.path.join(SDK, "kubectl.1.33")
VERSIONS = [
    pytest.param(KUBECTL_132, id="1.32", marks=pytest.mark.skipif(KUBECTL_132 is None, reason="no kubectl 1.32")),
    pytest.param(
        KUBECTL_133, id="1.33", marks=pytest.mark.skipif(not os.path.exists(KUBECTL_133), reason="no kubectl 1.33")
    ),
]
PROTOBUF_RESPONSE = re.compile(r"Response[^\n]*\n(?:[^\n]*\n){0,6}?[^\n]*Content-Type: application/vnd\.kubernetes\.protobuf")


class _Kubectl(Kubectl):
    """The shared runner with a chosen kubectl binary."""

    def __init__(self, binary: str, kubeconfig: str, home: str):
        super().__init__(kubeconfig, home)
        self.binary = binary

    def __call__(self, *args: str, timeout: float = 30, stdin: str | None = None) -> Any:
        import subprocess

        return subprocess.run(
            [self.binary, "--kubeconfig", self.kubeconfig, *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=self.env,
        )


@pytest.fixture(params=VERSIONS)
def kc(request: Any, tmp_path: Any) -> Iterator[_Kubectl]:
    with served_sim(tmp_path) as (kubeconfig, home):
        yield _Kubectl(request.param, kubeconfig, home)


def _wait(kc: _Kubectl, args: tuple[str, ...], want: Any, tries: int = 60) -> str:
    out = ""
    for _ in range(tries):  # bounded: the sim controllers settle in well under this
        out = kc.ok(*args)
        if want(out):
            return out
        time.sleep(0.5)
    return out


@pytest.mark.slow
def test_typed_generators(kc: _Kubectl) -> None:
    created = kc("create", "deployment", "web", "--image=busybox", "--replicas=2", "--port=8080", "-v=8")
    assert created.returncode == 0 and "deployment.apps/web created" in created.stdout, created.stderr
    # the request went as protobuf, and so did the answer kubectl decoded
    assert "Content-Type: application/vnd.kubernetes.protobuf" in created.stderr
    assert PROTOBUF_RESPONSE.search(created.stderr), created.stderr[-3000:]
    assert "resourcequota/q created" in kc.ok("create", "quota", "q", "--hard=pods=10,services=5")
    assert "service/s created" in kc.ok("create", "service", "clusterip", "s", "--tcp=80:8080")
    assert "namespace/team created" in kc.ok("create", "namespace", "team")
    assert "configmap/cm created" in kc.ok("create", "configmap", "cm", "--from-literal=a=b", "-n", "team")
    assert "secret/s created" in kc.ok("create", "secret", "generic", "s", "--from-literal=pw=hunter2")
    assert kc.ok("get", "secret", "s", "-o", "jsonpath={.data.pw}") == "aHVudGVyMg=="
    assert "serviceaccount/robot created" in kc.ok("create", "serviceaccount", "robot")
    assert "role.rbac.authorization.k8s.io/r created" in kc.ok("create", "role", "r", "--verb=get", "--resource=pods")
    assert "rolebinding.rbac.authorization.k8s.io/rb created" in kc.ok(
        "create", "rolebinding", "rb", "--role=r", "--serviceaccount=default:robot"
    )
    assert "clusterrole.rbac.authorization.k8s.io/cr created" in kc.ok(
        "create", "clusterrole", "cr", "--verb=list", "--resource=nodes"
    )
    assert "clusterrolebinding.rbac.authorization.k8s.io/crb created" in kc.ok(
        "create", "clusterrolebinding", "crb", "--clusterrole=cr", "--user=alice"
    )
    token = kc("create", "token", "robot", "--duration=1h", "-v=8")
    assert token.returncode == 0 and token.stdout.strip().count(".") == 2, token.stderr
    assert PROTOBUF_RESPONSE.search(token.stderr)
    can = kc("auth", "can-i", "list", "pods", "-v=8")
    assert can.stdout.strip() == "yes" and PROTOBUF_RESPONSE.search(can.stderr)
    rules = kc.ok("auth", "can-i", "--list", "-n", "team")  # a SelfSubjectRulesReview
    assert any(line.split()[:1] == ["*.*"] for line in rules.splitlines())

    # what was created reads back as upstream writes it: no Go zero values of unset fields
    dep = json.loads(kc.ok("get", "deployment", "web", "-o", "json"))
    container = dep["spec"]["template"]["spec"]["containers"][0]
    assert container["ports"] == [{"containerPort": 8080, "protocol": "TCP"}]
    assert "stdin" not in container and "hostNetwork" not in dep["spec"]["template"]["spec"]
    assert "hostPort:" not in kc.ok("get", "deployment", "web", "-o", "yaml")
    svc = json.loads(kc.ok("get", "service", "s", "-o", "json"))
    assert svc["spec"]["ports"][0]["targetPort"] == 8080 and "nodePort" not in svc["spec"]["ports"][0]
    quota = json.loads(kc.ok("get", "quota", "q", "-o", "json"))
    assert quota["spec"]["hard"] == {"pods": "10", "services": "5"}

    # errors come back as protobuf Status objects, which kubectl prints as for JSON
    again = kc("create", "deployment", "web", "--image=busybox")
    assert again.returncode == 1
    # (upstream's message names the resource `deployments.apps`; the registry's names `deployments`)
    assert again.stderr.startswith("error: failed to create deployment: deployments") and '"web" already exists' in again.stderr
    bad = kc("create", "quota", "bad", "--hard=pods=-1")
    assert bad.returncode == 1 and 'ResourceQuota "bad" is invalid' in bad.stderr and "spec.hard" in bad.stderr

    assert "deployment.apps/web scaled" in kc.ok("scale", "deployment", "web", "--replicas=3")
    pods = _wait(kc, ("get", "pods", "-l", "app=web", "-o", "name"), lambda out: len(out.split()) == 3)
    assert len(pods.split()) == 3


@pytest.mark.slow
def test_drain(kc: _Kubectl) -> None:
    kc.ok("create", "deployment", "web", "--image=busybox", "--replicas=4")
    placed = _wait(
        kc, ("get", "pods", "-o", "jsonpath={.items[*].spec.nodeName}"), lambda out: len(out.split()) == 4
    ).split()
    victim = placed[0]
    out = kc.ok("drain", victim, "--ignore-daemonsets", "--timeout=60s", timeout=90)
    assert f"node/{victim} cordoned" in out and f"node/{victim} drained" in out and "evicted" in out
    after = _wait(
        kc,
        ("get", "pods", "-o", "jsonpath={.items[*].spec.nodeName}"),
        lambda out: len(out.split()) == 4 and victim not in out.split(),
    ).split()
    assert len(after) == 4 and victim not in after
    assert f"node/{victim} uncordoned" in kc.ok("uncordon", victim)


@pytest.mark.slow
def test_events_watch_reads_the_protobuf_watch_stream(kc: _Kubectl, tmp_path: Any) -> None:
    import subprocess

    out_path, err_path = tmp_path / "events.out", tmp_path / "events.err"
    with open(out_path, "w") as out, open(err_path, "w") as err:
        # a typed client's watch: Accept protobuf, answered with length-prefixed WatchEvent frames
        watcher = subprocess.Popen(
            [kc.binary, "--kubeconfig", kc.kubeconfig, "events", "--watch", "-v=8"],
            stdout=out,
            stderr=err,
            env=kc.env,
        )
        try:
            seen = ""
            for _ in range(60):  # bounded: until the watch has printed the list and later events
                seen = out_path.read_text()
                if "LAST SEEN" in seen:
                    break
                time.sleep(0.5)
            kc.ok("create", "deployment", "web", "--image=busybox")
            for _ in range(60):
                seen = out_path.read_text()
                if "Scaled up replica set web-" in seen and "Created pod: web-" in seen:
                    break
                time.sleep(0.5)
        finally:
            watcher.terminate()
            watcher.wait(10)
    assert "Scaled up replica set web-" in seen and "Created pod: web-" in seen, seen
    assert "Content-Type: application/vnd.kubernetes.protobuf;stream=watch" in err_path.read_text()


# --- the table against kubectl's own descriptors ---------------------------------------------------


def _script() -> Any:
    spec = importlib.util.spec_from_file_location("gen_protobuf_schema", os.path.join(ROOT, "scripts", "gen_protobuf_schema.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.skipif(not os.path.exists(KUBECTL_133), reason="no kubectl 1.33")
def test_the_committed_table_is_what_the_script_generates(tmp_path: Any) -> None:
    out = str(tmp_path / "schema.py")
    _script().main(KUBECTL_133, out)
    with open(out) as fresh, open(os.path.join(ROOT, "nbkube", "apiserver", "protobuf_schema.py")) as committed:
        assert fresh.read() == committed.read()


@pytest.mark.skipif(not os.path.exists(KUBECTL_133), reason="no kubectl 1.33")
def test_googles_protobuf_parses_what_nbkube_encodes() -> None:
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    with open(KUBECTL_133, "rb") as f:
        data = f.read()
    files: dict[str, Any] = {}
    pos = 0
    while (i := data.find(b"\x1f\x8b\x08\x00\x00\x00\x00\x00", pos)) >= 0:
        pos = i + 1
        try:
            fd = descriptor_pb2.FileDescriptorProto.FromString(zlib.decompressobj(31).decompress(data[i : i + 4_000_000]))
        except Exception:  # some other gzip stream
            continue
        if fd.name.startswith("k8s.io/"):
            files[fd.name] = fd
    pool = descriptor_pool.DescriptorPool()
    added: set[str] = set()

    def add(name: str) -> None:  # without the gogo options: they change nothing on the wire
        if name in added:
            return
        for dep in files[name].dependency:
            if dep in files:
                add(dep)
        fd = descriptor_pb2.FileDescriptorProto()
        fd.CopyFrom(files[name])
        del fd.dependency[:]
        fd.dependency.extend(d for d in files[name].dependency if d in files)
        fd.ClearField("options")
        pool.Add(fd)
        added.add(name)

    folder = os.path.join(ROOT, "tests", "data", "protobuf")
    fixtures = []
    for name in sorted(n for n in os.listdir(folder) if n.startswith("objects") and n.endswith(".json")):
        with open(os.path.join(folder, name)) as f:
            fixtures.extend(json.load(f))
    for obj in fixtures:
        short = KINDS[(obj["apiVersion"], obj["kind"])]
        package, _, message = short.rpartition(".")
        full_package = next(fd.package for fd in files.values() if fd.package.endswith("." + package))
        add(next(n for n, fd in files.items() if fd.package == full_package))
        cls = message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{full_package}.{message}"))
        raw = protobuf._envelope(protobuf.encode(obj))[2]
        parsed = cls.FromString(raw)
        size = parsed.ByteSize()
        parsed.DiscardUnknownFields()
        assert parsed.ByteSize() == size == len(raw), obj["kind"]  # every field where upstream has it
        envelope = protobuf.MAGIC + protobuf.encode(obj)[len(protobuf.MAGIC) :]
        assert protobuf.decode(envelope) == obj


# --- the official Python client ---------------------------------------------------------------------


def test_python_client_still_gets_json(server: ApiServer, kubeconfig: str) -> None:
    kubernetes = pytest.importorskip("kubernetes")
    api_client = kubernetes.config.new_client_from_config(config_file=kubeconfig)
    try:
        core = kubernetes.client.CoreV1Api(api_client)
        c = kubernetes.client
        core.create_namespace(c.V1Namespace(metadata=c.V1ObjectMeta(name="py")))
        resp = core.read_namespace("py", _preload_content=False)
        assert resp.headers["Content-Type"] == "application/json"
        assert json.loads(resp.data)["metadata"]["name"] == "py"
        assert core.read_namespace("py").metadata.name == "py"
    finally:
        api_client.close()
