"""The generic protobuf codec: kubectl's captured bodies decoded, every served kind (and its list) round
tripped against JSON fixtures, the Go wire conventions (zeros, inline messages, times, int-or-string,
bytes), refusals, content negotiation and watch frames; then the API server answering protobuf."""

from __future__ import annotations

import copy
import json
import os
from typing import Any

import pytest
from nbk_apitest import connect, pod

from nbkube.api.kinds import KINDS as SERVED
from nbkube.apiserver import ApiServer
from nbkube.apiserver.protobuf import (
    MAGIC,
    NotEncodable,
    decode,
    encode,
    encode_watch_event,
    negotiate,
)
from nbkube.apiserver.protobuf_schema import KINDS, MESSAGES, ZERO_IS_ABSENT
from nbkube.apiserver.resources import UnsupportedMediaType
from nbkube.apiserver.routing import REVIEW_KINDS
from nbkube.errors import BadRequest

DATA = os.path.join(os.path.dirname(__file__), "..", "data", "protobuf")
PROTOBUF = "application/vnd.kubernetes.protobuf"
CLIENT_GO_ACCEPT = "application/vnd.kubernetes.protobuf,application/json"


def _fixtures() -> list[dict[str, Any]]:
    """objects.json and the objects_*.json of kinds added later (one file per group of kinds)."""
    objects: list[dict[str, Any]] = []
    for name in sorted(n for n in os.listdir(DATA) if n.startswith("objects") and n.endswith(".json")):
        with open(os.path.join(DATA, name)) as f:
            objects.extend(json.load(f))
    return objects


def _captured(name: str) -> bytes:
    with open(os.path.join(DATA, f"{name}.bin"), "rb") as f:
        return f.read()


def _varint(n: int) -> bytes:
    out = b""
    n &= (1 << 64) - 1
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])


def _field(number: int, value: bytes | int) -> bytes:
    if isinstance(value, int):
        return _varint(number << 3) + _varint(value)
    return _varint(number << 3 | 2) + _varint(len(value)) + value


def _entry(k: str, v: bytes) -> bytes:
    return _field(1, k.encode()) + _field(2, v)


def _body(api_version: str, kind: str, raw: bytes) -> bytes:
    type_meta = _field(1, api_version.encode()) + _field(2, kind.encode())
    return MAGIC + _field(1, type_meta) + _field(2, raw) + _field(4, b"application/vnd.kubernetes.protobuf")


# --- what the real kubectl sends (bytes captured by scripts/capture_kubectl_protobuf.py) ------------


def test_kubectl_create_deployment_body() -> None:
    assert decode(_captured("deployment")) == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "labels": {"app": "web"}},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "containers": [
                        {"name": "busybox", "image": "busybox", "ports": [{"containerPort": 8080}], "resources": {}}
                    ]
                },
            },
            "strategy": {},
        },
        # pointers in Go (observedGeneration, replicas are in some status structs): kept as sent
        "status": {"observedGeneration": 0, "replicas": 0},
    }


def test_kubectl_create_quota_service_serviceaccount_bodies() -> None:
    quota = decode(_captured("quota"))
    assert quota["kind"] == "ResourceQuota" and quota["metadata"] == {"name": "q"}
    assert quota["spec"] == {"hard": {"pods": "5", "requests.cpu": "1", "limits.memory": "2Gi"}}
    svc = decode(_captured("service"))
    assert svc["metadata"] == {"name": "s", "labels": {"app": "s"}}
    assert svc["spec"]["type"] == "ClusterIP" and svc["spec"]["selector"] == {"app": "s"}
    # targetPort an IntOrString holding an int; nodePort's Go zero (not a pointer) left out
    assert svc["spec"]["ports"] == [{"name": "80-8080", "protocol": "TCP", "port": 80, "targetPort": 8080}]
    assert decode(_captured("serviceaccount")) == {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {"name": "robot"},
    }


def test_kubectl_create_token_and_auth_can_i_bodies() -> None:
    token = decode(_captured("token"))
    assert token["kind"] == "TokenRequest" and token["apiVersion"] == "authentication.k8s.io/v1"
    assert token["spec"] == {"audiences": ["api"], "expirationSeconds": 3600}
    review = decode(_captured("can_i"))
    assert review["kind"] == "SelfSubjectAccessReview"
    assert review["spec"] == {"resourceAttributes": {"namespace": "default", "verb": "list", "resource": "pods"}}
    assert review["status"] == {"allowed": False}  # `allowed` is not omitempty in Go, `denied` is


# --- every kind both ways -------------------------------------------------------------------------


def test_the_fixtures_cover_every_served_kind_and_the_table_has_their_lists() -> None:
    covered = {(o["apiVersion"], o["kind"]) for o in _fixtures()}
    for info in (*SERVED, *REVIEW_KINDS):
        assert (info.api_version, info.kind) in covered, info.kind
    for info in SERVED:
        assert (info.api_version, f"{info.kind}List") in KINDS, info.kind
    for extra in ("Status", "DeleteOptions", "Eviction", "Scale", "TokenRequest"):
        assert extra in {k for _v, k in covered}


@pytest.mark.parametrize("obj", _fixtures(), ids=lambda o: o["kind"])
def test_round_trip(obj: dict[str, Any]) -> None:
    body = encode(obj)
    assert body.startswith(MAGIC)
    assert decode(body) == obj


@pytest.mark.parametrize("obj", [o for o in _fixtures() if o["kind"] in {i.kind for i in SERVED}], ids=lambda o: o["kind"])
def test_list_round_trip(obj: dict[str, Any]) -> None:
    item = {k: v for k, v in obj.items() if k not in ("apiVersion", "kind")}
    listed = {
        "apiVersion": obj["apiVersion"],
        "kind": f"{obj['kind']}List",
        "metadata": {"resourceVersion": "12", "continue": "abc", "remainingItemCount": 3},
        "items": [item, item],
    }
    assert decode(encode(listed)) == listed
    # the items of a JSON list may carry their TypeMeta; protobuf has no place for it (as upstream)
    with_type_meta = {**listed, "items": [obj]}
    assert decode(encode(with_type_meta))["items"] == [item]


# --- Go's wire conventions ------------------------------------------------------------------------


def test_go_zero_values_pointer_or_not() -> None:
    # Go writes hostPort 0 (an int32) and stdin false for every container; its JSON omits them. A
    # Deployment's replicas and a pod's terminationGracePeriodSeconds are pointers: an explicit 0 stays
    assert 2 in ZERO_IS_ABSENT["core.v1.ContainerPort"] and 1 not in ZERO_IS_ABSENT.get("apps.v1.DeploymentSpec", ())
    container = _field(1, b"c") + _field(2, b"busybox") + _field(6, _field(2, 0) + _field(3, 80)) + _field(16, 0)
    spec = _field(2, container) + _field(4, 0) + _field(11, 0)  # terminationGracePeriodSeconds=0, hostNetwork=false
    template = _field(1, b"") + _field(2, spec)
    dep = _field(1, _field(1, b"d")) + _field(2, _field(1, 0) + _field(3, template))
    obj = decode(_body("apps/v1", "Deployment", dep))
    assert obj["spec"]["replicas"] == 0
    pod_spec = obj["spec"]["template"]["spec"]
    assert pod_spec == {
        "containers": [{"name": "c", "image": "busybox", "ports": [{"containerPort": 80}]}],
        "terminationGracePeriodSeconds": 0,
    }


def test_inline_messages_times_quantities_bytes_and_negative_numbers() -> None:
    probe = {"httpGet": {"path": "/", "port": "http"}, "periodSeconds": 5}
    p = pod("p")
    p["spec"]["containers"][0]["readinessProbe"] = probe
    p["spec"]["volumes"] = [{"name": "d", "emptyDir": {"sizeLimit": "1Gi"}}]
    p["spec"]["containers"][0]["resources"] = {"limits": {"cpu": "500m"}}
    p["metadata"]["creationTimestamp"] = "2024-02-29T23:59:59Z"
    p["metadata"]["deletionGracePeriodSeconds"] = -5
    assert decode(encode(p)) == p
    # Probe's handler and Volume's source are inline in Go: one level down on the wire
    volume = _field(1, b"d") + _field(2, _field(2, _field(2, _field(1, b"1Gi"))))
    spec = _field(1, volume) + _field(2, _field(1, b"c") + _field(2, b"img"))
    assert decode(_body("v1", "Pod", _field(2, spec)))["spec"]["volumes"] == [
        {"name": "d", "emptyDir": {"sizeLimit": "1Gi"}}
    ]
    lease = {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": "l"},
        "spec": {"renewTime": "2024-01-01T00:00:00.123456Z", "leaseDurationSeconds": 15},
    }
    assert decode(encode(lease)) == lease  # MicroTime keeps microseconds
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "data": {"k": "AAEC/w=="}}
    raw = encode(secret)
    assert b"\x00\x01\x02\xff" in raw  # base64 in JSON, the bytes themselves on the wire
    assert decode(raw) == secret


def test_json_only_differences_are_normalized_as_upstream() -> None:
    ep = {"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "e"}, "subsets": []}
    assert "subsets" not in decode(encode(ep))  # an empty list is no list on the wire
    ev = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": "e"},
        "involvedObject": {"kind": "Pod", "name": "p"},
        "firstTimestamp": "2024-01-01T00:00:00.5Z",
    }
    assert decode(encode(ev))["firstTimestamp"] == "2024-01-01T00:00:00Z"  # metav1.Time is seconds


def test_unknown_fields_and_garbage_are_refused() -> None:
    with pytest.raises(BadRequest, match=r"core.v1.ConfigMap has no field number 99"):
        decode(_body("v1", "ConfigMap", _field(1, _field(1, b"c")) + _field(99, b"x")))
    with pytest.raises(BadRequest, match=r"meta.v1.ObjectMeta has no field number 15"):
        decode(_body("v1", "ConfigMap", _field(1, _field(1, b"c") + _field(15, 1))))
    with pytest.raises(UnsupportedMediaType, match="RuntimeClass"):
        decode(_body("node.k8s.io/v1", "RuntimeClass", b""))
    with pytest.raises(BadRequest, match="magic"):
        decode(b"not protobuf")
    with pytest.raises(BadRequest, match="malformed"):
        decode(MAGIC + b"\x0a\xff")  # a length running past the end
    with pytest.raises(BadRequest, match="UTF-8"):
        decode(_body("v1", "ConfigMap", _field(1, _field(1, b"\xff\xfe"))))
    with pytest.raises(BadRequest, match="wire type"):
        decode(_body("v1", "ConfigMap", _field(4, b"yes")))  # bytes where the bool `immutable` goes
    with pytest.raises(BadRequest, match="contentEncoding"):
        decode(MAGIC + _field(1, _field(1, b"v1") + _field(2, b"ConfigMap")) + _field(3, b"gzip"))


def test_namespace_configmap_secret_eviction_delete_options() -> None:
    meta = _field(1, b"team") + _field(2, b"") + _field(11, _entry("env", b"dev"))
    assert decode(_body("v1", "Namespace", _field(1, meta) + _field(2, b""))) == {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": "team", "labels": {"env": "dev"}},
        "spec": {},
    }
    cm = decode(_body("v1", "ConfigMap", _field(1, _field(1, b"c")) + _field(2, _entry("a", b"")) + _field(4, 1)))
    assert cm["data"] == {"a": ""} and cm["immutable"] is True
    secret = decode(_body("v1", "Secret", _field(1, _field(1, b"s")) + _field(2, _entry("pw", b"hunter2"))))
    assert secret["data"] == {"pw": "aHVudGVyMg=="}
    opts = _field(1, -1) + _field(2, _field(2, b"42")) + _field(4, b"Background")
    eviction = decode(_body("policy/v1", "Eviction", _field(1, _field(1, b"web")) + _field(2, opts)))
    assert eviction["deleteOptions"] == {
        "gracePeriodSeconds": -1,
        "preconditions": {"resourceVersion": "42"},
        "propagationPolicy": "Background",
    }
    assert decode(_body("v1", "DeleteOptions", _field(1, 0)))["gracePeriodSeconds"] == 0  # a pointer


def test_objects_the_table_cannot_hold_are_not_encodable() -> None:
    with pytest.raises(NotEncodable):
        encode({"apiVersion": "meta.k8s.io/v1", "kind": "Table", "rows": []})
    with pytest.raises(NotEncodable, match="noSuchField"):
        encode({**pod("p"), "spec": {"noSuchField": 1}})


def test_every_message_type_in_the_table_is_reachable_and_named() -> None:
    for name, fields in MESSAGES.items():
        for number, (json_name, kind, card) in fields.items():
            assert number > 0 and json_name and card in (0, 1, 2, 3), (name, number)
            assert kind in MESSAGES or kind[0].islower() or kind in {
                "Time", "MicroTime", "Duration", "FieldsV1", "IntOrString", "Quantity", "RawExtension", "StringList"
            }, (name, kind)


# --- content negotiation and watch frames ---------------------------------------------------------


def test_negotiate() -> None:
    assert negotiate(CLIENT_GO_ACCEPT) == (True, True)
    assert negotiate("application/json") == (False, True)
    assert negotiate("") == (False, True)
    assert negotiate("*/*") == (False, True)
    assert negotiate(PROTOBUF) == (True, False)
    assert negotiate("application/json, application/vnd.kubernetes.protobuf") == (False, True)
    assert negotiate("application/json;q=0.5, application/vnd.kubernetes.protobuf") == (True, True)
    assert negotiate("application/vnd.kubernetes.protobuf;as=Table;v=v1;g=meta.k8s.io,application/json") == (
        False,
        True,
    )
    assert negotiate("application/vnd.kubernetes.protobuf;stream=watch") == (True, False)


def _read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        b = buf[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        shift += 7
        if b < 0x80:
            return value, pos


def _length_delimited(buf: bytes) -> dict[int, bytes]:
    """The length-delimited fields of a message (the only kind WatchEvent and RawExtension have)."""
    out, pos = {}, 0
    while pos < len(buf):
        tag, pos = _read_varint(buf, pos)
        length, pos = _read_varint(buf, pos)
        out[tag >> 3] = buf[pos : pos + length]
        pos += length
    return out


def _frames(data: bytes) -> list[dict[str, Any]]:
    """A protobuf watch stream: 4-byte big-endian lengths, each a bare WatchEvent{type, object{raw}}."""
    out = []
    while data:
        n = int.from_bytes(data[:4], "big")
        event = _length_delimited(data[4 : 4 + n])
        data = data[4 + n :]
        raw = _length_delimited(event[2])[1]
        out.append({"type": event[1].decode(), "object": decode(raw)})
    return out


def test_watch_event_frames() -> None:
    p = pod("w")
    frames = encode_watch_event({"type": "ADDED", "object": p}) + encode_watch_event(
        {"type": "ERROR", "object": {"apiVersion": "v1", "kind": "Status", "status": "Failure", "code": 410}}
    )
    events = _frames(frames)
    assert events[0] == {"type": "ADDED", "object": p}
    assert events[1]["type"] == "ERROR" and events[1]["object"]["code"] == 410


# --- the API server -------------------------------------------------------------------------------


def _raw(server: ApiServer, method: str, path: str, body: bytes | None = None, accept: str = CLIENT_GO_ACCEPT,
         content_type: str = PROTOBUF) -> tuple[int, str, bytes]:
    conn = connect(server)
    try:
        headers = {"Accept": accept}
        if body is not None:
            headers["Content-Type"] = content_type
        conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        return resp.status, resp.getheader("Content-Type") or "", resp.read()
    finally:
        conn.close()


def test_server_answers_protobuf_to_clients_that_prefer_it(server: ApiServer) -> None:
    dep = next(o for o in _fixtures() if o["kind"] == "Deployment")
    created = copy.deepcopy(dep)
    created["metadata"] = {"name": "web", "labels": {"app": "web"}}
    del created["status"]
    code, ctype, body = _raw(server, "POST", "/apis/apps/v1/namespaces/default/deployments", encode(created))
    assert code == 201 and ctype == PROTOBUF
    back = decode(body)
    assert back["metadata"]["name"] == "web" and back["metadata"]["resourceVersion"]
    assert back["spec"]["template"] == created["spec"]["template"]
    code, ctype, body = _raw(server, "GET", "/apis/apps/v1/namespaces/default/deployments")
    assert code == 200 and ctype == PROTOBUF
    listed = decode(body)
    assert listed["kind"] == "DeploymentList" and [i["metadata"]["name"] for i in listed["items"]] == ["web"]
    # the JSON answer of the same object says the same
    code, ctype, body = _raw(server, "GET", "/apis/apps/v1/namespaces/default/deployments/web", accept="application/json")
    assert ctype == "application/json" and decode(encode(json.loads(body))) == back


def test_server_errors_are_protobuf_status(server: ApiServer) -> None:
    code, ctype, body = _raw(server, "GET", "/api/v1/namespaces/default/pods/nope")
    assert code == 404 and ctype == PROTOBUF
    status = decode(body)
    assert status["kind"] == "Status" and status["reason"] == "NotFound" and status["code"] == 404
    bad = _body("v1", "ConfigMap", _field(1, _field(1, b"c")) + _field(42, b"x"))
    code, ctype, body = _raw(server, "POST", "/api/v1/namespaces/default/configmaps", bad)
    assert code == 400 and "core.v1.ConfigMap has no field number 42" in decode(body)["message"]


def test_server_tables_and_static_documents_stay_json(server: ApiServer) -> None:
    table = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"
    code, ctype, _ = _raw(server, "GET", "/api/v1/namespaces/default/pods", accept=table)
    assert code == 200 and ctype == "application/json"
    code, ctype, _ = _raw(server, "GET", "/version")
    assert code == 200 and ctype == "application/json"


def test_server_watch_in_protobuf_frames(server: ApiServer) -> None:
    code, _, _ = _raw(server, "POST", "/api/v1/namespaces/default/pods", encode(pod("a")))
    assert code == 201
    conn = connect(server)
    try:
        conn.request("GET", "/api/v1/namespaces/default/pods?watch=true&timeoutSeconds=1", headers={"Accept": CLIENT_GO_ACCEPT})
        resp = conn.getresponse()
        assert resp.getheader("Content-Type") == "application/vnd.kubernetes.protobuf;stream=watch"
        events = _frames(resp.read())
    finally:
        conn.close()
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [("ADDED", "a")]


def test_encode_answer_falls_back_to_json_or_406() -> None:
    from nbkube.apiserver.server import _encode

    table = {"apiVersion": "meta.k8s.io/v1", "kind": "Table", "rows": []}  # no protobuf schema
    out = _encode(200, table, None, CLIENT_GO_ACCEPT)
    assert out.code == 200 and out.content_type == "application/json"
    out = _encode(200, table, None, PROTOBUF)  # the client takes nothing else
    assert out.code == 406 and out.content_type == PROTOBUF
    assert decode(out.body)["reason"] == "NotAcceptable"
    out = _encode(200, pod("p"), None, PROTOBUF)
    assert out.content_type == PROTOBUF and decode(out.body) == pod("p")
