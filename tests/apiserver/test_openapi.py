"""The OpenAPI documents: v3 per group/version and v2 (JSON and gnostic protobuf), with the full
schema of every served kind, the patch annotations of the strategic merge table, and the PATCH
operations' `fieldValidation` that lets kubectl validate on the server."""

from __future__ import annotations

import json
from typing import Any

from nbk_apitest import call, connect

from nbkube.api import fieldnames, schemas
from nbkube.api.kinds import KINDS
from nbkube.apiserver import ApiServer, openapi


def test_root_lists_every_group_version(server: ApiServer) -> None:
    code, root, _ = call(server, "GET", "/openapi/v3")
    assert code == 200
    assert set(root["paths"]) == {openapi.url_key(i.api_version) for i in KINDS}
    assert root["paths"]["apis/apps/v1"]["serverRelativeURL"].startswith("/openapi/v3/apis/apps/v1?hash=")


def test_patch_operations_declare_field_validation(server: ApiServer) -> None:
    code, doc, _ = call(server, "GET", "/openapi/v3/apis/apps/v1?hash=x")
    assert code == 200 and doc["openapi"].startswith("3.")
    patch = doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"]
    assert patch["x-kubernetes-group-version-kind"] == {"group": "apps", "version": "v1", "kind": "Deployment"}
    assert any(p["name"] == "fieldValidation" and p["in"] == "query" for p in patch["parameters"])
    # no strategic content type in v3: kubectl >= 1.30 computes apply's patch from its compiled-in types
    assert "application/strategic-merge-patch+json" not in patch["requestBody"]["content"]
    _, core, _ = call(server, "GET", "/openapi/v3/api/v1")
    assert "/api/v1/nodes/{name}" in core["paths"]
    assert call(server, "GET", "/openapi/v3/apis/example.com/v1")[0] == 404


def _gv_docs(server: ApiServer) -> dict[str, dict[str, Any]]:
    out = {}
    for gv in {i.api_version for i in KINDS}:
        code, doc, _ = call(server, "GET", f"/openapi/v3/{openapi.url_key(gv)}")
        assert code == 200
        out[gv] = doc["components"]["schemas"]
    return out


def _kind_schema(defs: dict[str, Any], kind: str, group: str, version: str = "v1") -> dict[str, Any]:
    found = [
        s
        for s in defs.values()
        if {"group": group, "version": version, "kind": kind} in s.get("x-kubernetes-group-version-kind", [])
    ]
    assert len(found) == 1, kind
    return found[0]


def test_every_kind_has_a_v3_schema_found_by_its_gvk(server: ApiServer) -> None:
    docs = _gv_docs(server)
    for info in KINDS:
        schema = _kind_schema(docs[info.api_version], info.kind, info.group, info.version)
        assert set(schema["properties"]) == fieldnames.TOP_LEVEL[info.kind]
        assert schema["type"] == "object" and schema["description"]


def test_every_field_of_the_validation_tables_is_in_the_served_schema(server: ApiServer) -> None:
    merged: dict[str, Any] = {}
    for defs in _gv_docs(server).values():
        merged.update(defs)
    for shape, names in fieldnames.FIELDS.items():
        served = merged[schemas.SHAPES[shape].model]
        assert set(served["properties"]) == names, shape
        for name, prop in served["properties"].items():
            assert prop.get("description"), f"{shape}.{name}"
            assert "type" in prop or "allOf" in prop, f"{shape}.{name}"


def test_types_refs_and_extensions(server: ApiServer) -> None:
    _, core, _ = call(server, "GET", "/openapi/v3/api/v1")
    defs = core["components"]["schemas"]
    container = defs["io.k8s.api.core.v1.Container"]
    assert container["required"] == ["name"]
    ports = container["properties"]["ports"]
    assert ports["items"] == {"$ref": "#/components/schemas/io.k8s.api.core.v1.ContainerPort"}
    assert ports["x-kubernetes-patch-merge-key"] == "containerPort"
    assert ports["x-kubernetes-patch-strategy"] == "merge"
    assert ports["x-kubernetes-list-type"] == "map" and ports["x-kubernetes-list-map-keys"] == ["containerPort"]
    port = defs["io.k8s.api.core.v1.ContainerPort"]
    assert port["properties"]["containerPort"]["type"] == "integer"
    assert port["properties"]["containerPort"]["format"] == "int32"
    assert port["required"] == ["containerPort"] and port["properties"]["protocol"]["enum"] == ["SCTP", "TCP", "UDP"]
    assert container["properties"]["resources"]["allOf"] == [
        {"$ref": "#/components/schemas/io.k8s.api.core.v1.ResourceRequirements"}
    ]
    limits = defs["io.k8s.api.core.v1.ResourceRequirements"]["properties"]["limits"]
    assert limits["type"] == "object"
    assert limits["additionalProperties"] == {"$ref": "#/components/schemas/io.k8s.apimachinery.pkg.api.resource.Quantity"}
    intstr = defs["io.k8s.apimachinery.pkg.util.intstr.IntOrString"]
    assert intstr["x-kubernetes-int-or-string"] is True and intstr["format"] == "int-or-string"
    assert intstr["oneOf"] == [{"type": "integer"}, {"type": "string"}]  # v2 says type: string
    spec = defs["io.k8s.api.core.v1.PodSpec"]["properties"]
    assert spec["tolerations"]["x-kubernetes-list-type"] == "atomic"
    assert spec["volumes"]["x-kubernetes-patch-strategy"] == "merge,retainKeys"
    assert spec["terminationGracePeriodSeconds"]["format"] == "int64"
    meta = defs["io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"]["properties"]
    assert meta["finalizers"]["x-kubernetes-list-type"] == "set"
    assert meta["labels"]["additionalProperties"] == {"type": "string"}
    # the open shapes are described too
    assert "runAsNonRoot" in defs["io.k8s.api.core.v1.SecurityContext"]["properties"]
    assert "nodeAffinity" in defs["io.k8s.api.core.v1.Affinity"]["properties"]
    _, apps, _ = call(server, "GET", "/openapi/v3/apis/apps/v1")
    strategy = apps["components"]["schemas"]["io.k8s.api.apps.v1.DeploymentSpec"]["properties"]["strategy"]
    assert strategy["x-kubernetes-patch-strategy"] == "retainKeys"
    _, rbac, _ = call(server, "GET", "/openapi/v3/apis/rbac.authorization.k8s.io/v1")
    binding = _kind_schema(rbac["components"]["schemas"], "RoleBinding", "rbac.authorization.k8s.io")
    assert binding["required"] == ["roleRef"]


def test_every_reference_resolves(server: ApiServer) -> None:
    def refs(value: Any) -> list[str]:
        if isinstance(value, dict):
            own = [value["$ref"]] if "$ref" in value else []
            return own + [r for v in value.values() for r in refs(v)]
        if isinstance(value, list):
            return [r for v in value for r in refs(v)]
        return []

    for defs in _gv_docs(server).values():
        for ref in refs(defs):
            assert ref.removeprefix("#/components/schemas/") in defs, ref
    doc = json.loads(openapi.v2_json())
    for ref in refs(doc):
        assert ref.removeprefix("#/definitions/") in doc["definitions"], ref


def test_v2_json_has_every_kind(server: ApiServer) -> None:
    code, doc, headers = call(server, "GET", "/openapi/v2")
    assert code == 200 and headers["Content-Type"] == "application/json" and doc["swagger"] == "2.0"
    gvks = [g for s in doc["definitions"].values() for g in s.get("x-kubernetes-group-version-kind", [])]
    assert sorted(g["kind"] for g in gvks) == sorted(i.kind for i in KINDS)
    container = doc["definitions"]["io.k8s.api.core.v1.Container"]["properties"]
    assert container["ports"]["items"] == {"$ref": "#/definitions/io.k8s.api.core.v1.ContainerPort"}
    assert container["resources"] == {
        "$ref": "#/definitions/io.k8s.api.core.v1.ResourceRequirements",
        "description": "Compute resources required by this container.",
    }
    patch = doc["paths"]["/api/v1/namespaces/{namespace}/pods/{name}"]["patch"]
    assert "application/strategic-merge-patch+json" in patch["consumes"]


def _fields(data: bytes) -> list[tuple[int, Any]]:
    """The (field number, value) pairs of one protobuf message (varints and length-delimited only)."""
    out, i = [], 0
    while i < len(data):
        key, i = _varint(data, i)
        if key & 7 == 0:
            value, i = _varint(data, i)
            out.append((key >> 3, value))
        else:
            assert key & 7 == 2
            size, i = _varint(data, i)
            out.append((key >> 3, data[i : i + size]))
            i += size
    return out


def _varint(data: bytes, i: int) -> tuple[int, int]:
    shift = value = 0
    while True:
        b = data[i]
        i += 1
        value |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return value, i


def test_v2_protobuf_as_kubectl_asks_for_it(server: ApiServer) -> None:
    conn = connect(server)
    try:
        conn.request("GET", "/openapi/v2", headers={"Accept": "application/com.github.proto-openapi.spec.v2@v1.0+protobuf"})
        resp = conn.getresponse()
        body = resp.read()
        assert resp.status == 200
        assert resp.getheader("Content-Type") == "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"
    finally:
        conn.close()
    top = dict(_fields(body))
    assert top[1] == b"2.0"  # Document.swagger
    definitions = {}
    for number, named in _fields(top[9]):  # Document.definitions -> NamedSchema
        assert number == 1
        entry = dict(_fields(named))
        definitions[entry[1].decode()] = entry[2]
    assert set(definitions) == set(json.loads(openapi.v2_json())["definitions"])
    pod = dict(_fields(definitions["io.k8s.api.core.v1.Pod"]))
    assert dict(_fields(pod[22]))[1] == b"object"  # Schema.type
    extension = dict(_fields(pod[31]))  # Schema.vendor_extension -> NamedAny
    assert extension[1] == b"x-kubernetes-group-version-kind"
    assert json.loads(dict(_fields(extension[2]))[2]) == [{"group": "", "version": "v1", "kind": "Pod"}]
