"""SelfSubjectAccessReview / SelfSubjectRulesReview: the answers, their protobuf bodies as kubectl
builds them, and `kubectl auth can-i` itself against a small server that answers with these."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from nbk_apitest import KUBECTL, Kubectl
from nbk_rbactest import Cluster, User, binding, role, rule, subject

from nbkube.apiserver import discovery
from nbkube.apiserver.protobuf import MAGIC, decode
from nbkube.apiserver.rbac import RBACAuthorizer
from nbkube.apiserver.rbac_defaults import ensure_default_roles
from nbkube.apiserver.selfreviews import access_review, rules_review
from nbkube.errors import BadRequest, Invalid
from nbkube.registry.registry import Registry

ALICE = User("alice")
SSAR = "authorization.k8s.io/v1"


@pytest.fixture
def cluster(registry: Registry) -> Iterator[Cluster]:
    c = Cluster(registry).start()
    c.apply(
        role("pods", "bob", rule("get list", "", "pods"), rule("create", "", "pods/exec")),
        binding("alice", "bob", "Role", "pods", subject("User", "alice")),
        {**role("health", ""), "rules": [{"verbs": ["get"], "nonResourceURLs": ["/healthz"]}]},
        binding("health", "", "ClusterRole", "health", subject("Group", "system:authenticated")),
    )
    yield c
    c.stop()


def _ssar(spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": SSAR,
        "kind": "SelfSubjectAccessReview",
        "metadata": {"creationTimestamp": None},
        "spec": spec,
    }


def test_access_review(cluster: Cluster) -> None:
    review = access_review(
        cluster.authz,
        ALICE,
        _ssar({"resourceAttributes": {"namespace": "bob", "verb": "list", "resource": "pods"}}),
    )
    assert review["status"] == {
        "allowed": True,
        "reason": 'RBAC: allowed by RoleBinding "alice/bob" of Role "pods" to User "alice"',
    }
    assert (
        review["spec"]["resourceAttributes"]["verb"] == "list" and review["kind"] == "SelfSubjectAccessReview"
    )
    exec_ = {"namespace": "bob", "verb": "create", "resource": "pods", "subresource": "exec", "name": "web"}
    assert access_review(cluster.authz, ALICE, _ssar({"resourceAttributes": exec_}))["status"]["allowed"]
    denied = access_review(
        cluster.authz, ALICE, _ssar({"resourceAttributes": {"verb": "list", "resource": "pods"}})
    )
    assert denied["status"] == {"allowed": False}
    url = access_review(
        cluster.authz, ALICE, _ssar({"nonResourceAttributes": {"path": "/healthz", "verb": "get"}})
    )
    assert url["status"]["allowed"]


def test_access_review_needs_exactly_one_kind_of_attributes(cluster: Cluster) -> None:
    with pytest.raises(Invalid) as both:
        access_review(
            cluster.authz,
            ALICE,
            _ssar({"resourceAttributes": {"verb": "get"}, "nonResourceAttributes": {"path": "/"}}),
        )
    assert [e.path for e in both.value.errors] == ["spec.nonResourceAttributes"]
    with pytest.raises(Invalid) as neither:
        access_review(cluster.authz, ALICE, _ssar({}))
    assert [e.path for e in neither.value.errors] == ["spec.resourceAttributes"]
    assert "exactly one of nonResourceAttributes or resourceAttributes" in str(neither.value)
    with pytest.raises(Invalid):
        access_review(cluster.authz, ALICE, {"kind": "SelfSubjectAccessReview"})
    with pytest.raises(BadRequest):
        access_review(cluster.authz, ALICE, {"kind": "Pod", "spec": {}})


def test_rules_review(cluster: Cluster) -> None:
    body = {"apiVersion": SSAR, "kind": "SelfSubjectRulesReview", "spec": {"namespace": "bob"}}
    review = rules_review(cluster.authz, ALICE, body)
    assert review["status"] == {
        "resourceRules": [
            {"verbs": ["get", "list"], "apiGroups": [""], "resources": ["pods"]},
            {"verbs": ["create"], "apiGroups": [""], "resources": ["pods/exec"]},
        ],
        "nonResourceRules": [{"verbs": ["get"], "nonResourceURLs": ["/healthz"]}],
        "incomplete": False,
    }
    with pytest.raises(BadRequest, match="no namespace on request"):
        rules_review(cluster.authz, ALICE, {"apiVersion": SSAR, "kind": "SelfSubjectRulesReview", "spec": {}})


def test_rules_review_reports_missing_roles(cluster: Cluster) -> None:
    cluster.apply(binding("dangling", "bob", "ClusterRole", "gone", subject("User", "alice")))
    review = rules_review(cluster.authz, ALICE, {"spec": {"namespace": "bob"}})
    assert review["status"]["evaluationError"] == 'clusterrole.rbac.authorization.k8s.io "gone" not found'
    assert review["status"]["incomplete"] is False and review["status"]["resourceRules"]


# --- protobuf bodies, field by field as gogo-protobuf marshals them (every string, even empty) ----


def _varint(n: int) -> bytes:
    out = b""
    while True:
        b, n = n & 0x7F, n >> 7
        if not n:
            return out + bytes([b])
        out += bytes([b | 0x80])


def _f(number: int, value: bytes | int | str) -> bytes:
    if isinstance(value, int):
        return _varint(number << 3) + _varint(value)
    data = value.encode() if isinstance(value, str) else value
    return _varint(number << 3 | 2) + _varint(len(data)) + data


def _empty_meta() -> bytes:
    # name, generateName, namespace, selfLink, uid, resourceVersion, generation, creationTimestamp
    # (a zero metav1.Time marshals to an empty message)
    return b"".join(_f(i, "") for i in range(1, 7)) + _f(7, 0) + _f(8, b"")


def _envelope(kind: str, raw: bytes, api_version: str = SSAR) -> bytes:
    type_meta = _f(1, api_version) + _f(2, kind)
    return MAGIC + _f(1, type_meta) + _f(2, raw) + _f(3, "") + _f(4, "")


def _status() -> bytes:  # allowed=false, reason, evaluationError, denied=false
    return _f(1, 0) + _f(2, "") + _f(3, "") + _f(4, 0)


def test_protobuf_access_review() -> None:
    attrs = [("bob", 1), ("list", 2), ("", 3), ("", 4), ("pods", 5), ("", 6), ("", 7)]
    ra = b"".join(_f(n, v) for v, n in attrs)
    body = _envelope("SelfSubjectAccessReview", _f(1, _empty_meta()) + _f(2, _f(1, ra)) + _f(3, _status()))
    assert decode(body) == {
        "apiVersion": SSAR,
        "kind": "SelfSubjectAccessReview",
        "metadata": {},
        "spec": {"resourceAttributes": {"namespace": "bob", "verb": "list", "resource": "pods"}},
        "status": {"allowed": False},  # not omitempty in Go; `denied` is
    }
    nra = _f(1, "/healthz") + _f(2, "get")
    body = _envelope("SelfSubjectAccessReview", _f(1, _empty_meta()) + _f(2, _f(2, nra)) + _f(3, _status()))
    assert decode(body)["spec"] == {"nonResourceAttributes": {"path": "/healthz", "verb": "get"}}


def test_protobuf_rules_review() -> None:
    status = _f(3, 0) + _f(4, "")
    body = _envelope("SelfSubjectRulesReview", _f(1, _empty_meta()) + _f(2, _f(1, "bob")) + _f(3, status))
    assert decode(body) == {
        "apiVersion": SSAR,
        "kind": "SelfSubjectRulesReview",
        "metadata": {},
        "spec": {"namespace": "bob"},
        "status": {"incomplete": False},
    }


def test_protobuf_rbac_kinds() -> None:
    rbac = "rbac.authorization.k8s.io/v1"
    meta = _f(1, "pod-reader") + _f(3, "bob")
    rule_ = _f(1, "get") + _f(1, "list") + _f(2, "") + _f(3, "pods") + _f(4, "web")
    role_ = decode(_envelope("Role", _f(1, meta) + _f(2, rule_) + _f(2, _f(1, "get") + _f(5, "/x")), rbac))
    assert role_["rules"] == [
        {"verbs": ["get", "list"], "apiGroups": [""], "resources": ["pods"], "resourceNames": ["web"]},
        {"verbs": ["get"], "nonResourceURLs": ["/x"]},
    ]
    subj = _f(1, "ServiceAccount") + _f(2, "") + _f(3, "ci") + _f(4, "bob")
    ref = _f(1, "rbac.authorization.k8s.io") + _f(2, "Role") + _f(3, "pod-reader")
    rb = decode(_envelope("RoleBinding", _f(1, meta) + _f(2, subj) + _f(3, ref), rbac))
    assert rb["subjects"] == [{"kind": "ServiceAccount", "name": "ci", "namespace": "bob"}]
    assert rb["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "pod-reader"}
    agg = _f(3, _f(1, _f(1, _f(1, "a") + _f(2, "b"))))
    cr = decode(_envelope("ClusterRole", _f(1, _f(1, "x")) + agg, rbac))
    assert cr["aggregationRule"] == {"clusterRoleSelectors": [{"matchLabels": {"a": "b"}}]}


# --- the real kubectl -----------------------------------------------------------------------------


class _Server:
    """Discovery plus the two review endpoints, answered by decode + access_review / rules_review for
    one fixed user: what the API server does once authentication and routing are in place."""

    def __init__(self, authz: RBACAuthorizer, user: User):
        self.bodies: list[tuple[str, bytes]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, code: int, obj: Any) -> None:
                data = json.dumps(obj).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                path = self.path.split("?")[0]
                if path == "/api":
                    return self._send(200, discovery.api_versions())
                if path == "/apis":
                    return self._send(200, discovery.api_group_list())
                gv = path.removeprefix("/api/").removeprefix("/apis/")
                found = discovery.resource_list(gv)
                return self._send(200 if found else 404, found or {"kind": "Status", "code": 404})

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                ctype = self.headers.get("Content-Type", "")
                outer.bodies.append((ctype, raw))
                body = (
                    decode(raw)
                    if ctype.startswith("application/vnd.kubernetes.protobuf")
                    else json.loads(raw)
                )
                if self.path.startswith("/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"):
                    return self._send(201, access_review(authz, user, body))
                return self._send(201, rules_review(authz, user, body))

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def kubeconfig(self, path: str) -> str:
        port = self.httpd.server_address[1]
        with open(path, "w") as f:
            json.dump(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [{"name": "c", "cluster": {"server": f"http://127.0.0.1:{port}"}}],
                    "users": [{"name": "u", "user": {}}],
                    "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u", "namespace": "bob"}}],
                    "current-context": "c",
                },
                f,
            )
        return path

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


@pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed")
def test_kubectl_auth_can_i(cluster: Cluster, tmp_path: Any) -> None:
    ensure_default_roles(cluster.registry)
    cluster.apply(role("marker", "", rule("get", "", "nodes")))  # the informers are past the defaults
    server = _Server(cluster.authz, ALICE)
    try:
        home = tmp_path / "home"
        home.mkdir()
        kubectl = Kubectl(server.kubeconfig(str(tmp_path / "kubeconfig")), str(home))
        assert kubectl.ok("auth", "can-i", "list", "pods").strip() == "yes"  # namespace bob from the context
        assert kubectl("auth", "can-i", "list", "pods", "-n", "carol").stdout.strip() == "no"
        assert (
            kubectl.ok("auth", "can-i", "create", "pods", "--subresource=exec", "-n", "bob").strip() == "yes"
        )
        assert kubectl("auth", "can-i", "get", "secrets").stdout.strip() == "no"
        assert kubectl.ok("auth", "can-i", "get", "/healthz").strip() == "yes"
        listing = kubectl.ok("auth", "can-i", "--list")
        lines = [line.split() for line in listing.splitlines()]
        assert lines[0] == ["Resources", "Non-Resource", "URLs", "Resource", "Names", "Verbs"]
        assert ["pods", "[]", "[]", "[get", "list]"] in lines
        assert ["pods/exec", "[]", "[]", "[create]"] in lines
        assert ["[/healthz]", "[]", "[get]"] in lines
        assert ["selfsubjectaccessreviews.authorization.k8s.io", "[]", "[]", "[create]"] in lines
        # kubectl sent its reviews as protobuf, and they were decoded
        assert {ctype for ctype, _ in server.bodies} == {"application/vnd.kubernetes.protobuf"}
    finally:
        server.close()
