"""load_manifests / load_file / dump_*: the article's manifests, and every kind of bad input."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import yaml

from nbkube.api import serialization
from nbkube.api.serialization import API_MAX_OBJECT_BYTES, dump_json, dump_yaml, load_file, load_manifests
from nbkube.errors import Invalid, ManifestError, TooLarge
from nbkube.store.base import MAX_VALUE_BYTES

DATA = Path(__file__).parent / "data"
RC_YAML = (DATA / "rc.yaml").read_text()
SVC_YAML = (DATA / "service.yaml").read_text()

POD = """\
apiVersion: v1
kind: Pod
metadata:
  name: web
spec:
  containers:
  - name: web
    image: busybox:1.36
"""


def test_article_rc_loads_with_kubernetes_defaults() -> None:
    [rc] = load_file(str(DATA / "rc.yaml"))
    assert rc["kind"] == "ReplicationController"
    assert rc["metadata"]["name"] == "nginx-test-controller"
    assert rc["metadata"]["namespace"] == "default"
    assert rc["spec"]["replicas"] == 5
    assert rc["spec"]["selector"] == {"app": "nginx"}
    assert rc["metadata"]["labels"] == {"app": "nginx"}
    pod_spec = rc["spec"]["template"]["spec"]
    assert pod_spec["restartPolicy"] == "Always"
    assert pod_spec["dnsPolicy"] == "ClusterFirst"
    [container] = pod_spec["containers"]
    assert container["ports"] == [{"containerPort": 80, "protocol": "TCP"}]
    assert container["imagePullPolicy"] == "Always"  # `nginx` has no tag, i.e. latest


def test_article_service_loads_with_kubernetes_defaults() -> None:
    [svc] = load_file(str(DATA / "service.yaml"))
    assert svc["metadata"] == {"name": "nginx-http-service", "namespace": "default"}
    assert svc["spec"]["type"] == "NodePort"
    assert svc["spec"]["ports"] == [{"port": 8000, "targetPort": 80, "protocol": "TCP", "nodePort": 30001}]
    assert svc["spec"]["selector"] == {"app": "nginx"}
    assert svc["spec"]["sessionAffinity"] == "None"


def test_target_port_and_protocol_default_from_port() -> None:
    text = "apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec:\n  ports:\n  - port: 80\n"
    [svc] = load_manifests(text)
    assert svc["spec"]["ports"] == [{"port": 80, "protocol": "TCP", "targetPort": 80}]
    assert svc["spec"]["type"] == "ClusterIP"


def test_both_article_manifests_in_one_stream_round_trip() -> None:
    objs = load_manifests(RC_YAML + "---\n" + SVC_YAML, "both.yaml")
    assert [o["kind"] for o in objs] == ["ReplicationController", "Service"]
    assert load_manifests(dump_yaml(objs)) == objs
    assert load_manifests(dump_json(objs)) == objs
    for obj in objs:
        assert load_manifests(dump_yaml(obj)) == [obj]
        assert load_manifests(dump_json(obj)) == [obj]


def test_dump_list_shape_and_key_order() -> None:
    objs = load_manifests(RC_YAML)
    doc = json.loads(dump_json(objs))
    assert doc == {"apiVersion": "v1", "kind": "List", "items": objs}
    text = dump_yaml(objs[0])
    assert text.startswith("apiVersion: v1\nkind: ReplicationController\nmetadata:\n")
    assert "{" not in text.replace("securityContext: {}", "").replace("resources: {}", "")  # block style
    assert yaml.safe_load(text) == objs[0]


def test_dump_yaml_never_emits_anchors_for_shared_parts() -> None:
    [rc] = load_manifests(RC_YAML)
    twin = dict(
        rc, metadata={"name": "twin", "namespace": "default", "labels": {"app": "nginx"}}
    )  # shares spec
    text = dump_yaml([rc, twin])
    assert "&" not in text and "*" not in text
    assert load_manifests(text) == [rc, twin]


def test_dump_yaml_quotes_strings_that_look_like_other_types() -> None:
    obj = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "c", "namespace": "default"},
        "data": {"a": "yes", "b": "1", "c": "2024-01-01", "d": "line1\nline2\n", "e": "null"},
    }
    assert load_manifests(dump_yaml(obj)) == [obj]


def test_multi_document_skips_empty_documents_and_counts_them() -> None:
    text = (
        "---\n"
        + POD
        + "---\n---\n# only a comment\n---\n"
        + POD.replace("name: web\nspec", "name: web2\nspec")
    )
    objs = load_manifests(text)
    assert [o["metadata"]["name"] for o in objs] == ["web", "web2"]
    bad = POD + "---\n---\n" + POD.replace("image: busybox:1.36", "image: ''")
    with pytest.raises(Invalid, match=r"^f\.yaml doc 3: spec\.containers\[0\]\.image: required$"):
        load_manifests(bad, "f.yaml")


def test_kind_list_is_flattened_and_errors_name_the_item() -> None:
    text = dump_yaml(load_manifests(RC_YAML + "---\n" + SVC_YAML))
    assert [o["kind"] for o in load_manifests(text)] == ["ReplicationController", "Service"]
    pod_list = {
        "apiVersion": "v1",
        "kind": "PodList",
        "items": [yaml.safe_load(POD), {"apiVersion": "v1", "kind": "Pod"}],
    }
    with pytest.raises(Invalid) as info:
        load_manifests(json.dumps(pod_list), "pods.json")
    assert str(info.value) == (
        "pods.json doc 1 items[1]: metadata.name: required (or set metadata.generateName); spec.containers: required"
    )
    assert load_manifests('{"apiVersion": "v1", "kind": "List", "items": []}') == []


def test_json_input_single_and_concatenated() -> None:
    pod = yaml.safe_load(POD)
    [one] = load_manifests(json.dumps(pod, indent="\t"))
    assert one["metadata"]["namespace"] == "default"
    second = dict(pod, metadata={"name": "other"})
    objs = load_manifests(json.dumps(pod) + "\n" + json.dumps(second))
    assert [o["metadata"]["name"] for o in objs] == ["web", "other"]


def test_duplicate_key_in_json_is_an_error_with_its_line() -> None:
    text = (
        '{\n  "apiVersion": "v1",\n  "kind": "Namespace",\n  "kind": "Pod",\n  "metadata": {"name": "a"}\n}\n'
    )
    msg = _error(text, "ns.json")
    assert msg.startswith("ns.json doc 1: malformed JSON at line 4")
    assert "duplicate key 'kind'" in msg


def test_malformed_json_names_the_line() -> None:
    msg = _error('{"apiVersion": "v1",\n "kind": "Pod"\n "metadata": {}}\n', "p.json")
    assert msg.startswith("p.json doc 1: malformed JSON at line 3")


def test_yaml_only_values_and_keys() -> None:
    # scalar keys become strings as in Kubernetes' YAML-to-JSON step; label values stay typed
    [cm] = load_manifests("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: {80: x, true: y}\n")
    assert cm["data"] == {"80": "x", "true": "y"}
    msg = _error("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\nbinaryData: {b: !!binary aGVsbG8=}\n")
    assert msg.startswith("bad.yaml doc 1: binaryData.b: unsupported value of type bytes")
    msg = _error("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: {1: x, '1': y}\n")
    assert msg == "bad.yaml doc 1: data: duplicate key '1'"
    msg = _error("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: {[a, b]: x}\n")
    assert msg.startswith("bad.yaml doc 1: malformed YAML at line 4")
    msg = _error("apiVersion: v1\nkind: PodList\nitems: {a: 1}\n")
    assert msg == 'bad.yaml doc 1: items: must be a list, got mapping {"a":1}'


def test_timestamps_stay_strings() -> None:
    text = POD.replace("name: web\n", "name: web\n  creationTimestamp: 2024-01-02T03:04:05Z\n", 1)
    [pod] = load_manifests(text)
    assert pod["metadata"]["creationTimestamp"] == "2024-01-02T03:04:05Z"
    json.dumps(pod)


# --- bad input ---------------------------------------------------------------------------------


def _error(text: str, source: str = "bad.yaml") -> str:
    with pytest.raises((ManifestError, Invalid, TooLarge)) as info:
        load_manifests(text, source)
    return str(info.value)


def test_malformed_yaml_names_file_document_and_line() -> None:
    text = POD + "---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: x\n   oops: [\n"
    msg = _error(text)
    assert msg.startswith(
        "bad.yaml doc 2: malformed YAML at line 14, column 8: mapping values are not allowed"
    )
    # a syntax error is reported even when an earlier document is also invalid
    msg = _error("kind: Pod\n---\na: [\n")
    assert msg.startswith(
        "bad.yaml doc 2: malformed YAML at line 4, column 1: did not find expected node content"
    )


def test_duplicate_key_in_a_mapping_is_an_error() -> None:
    msg = _error("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata:\n  k: a\n  k: b\n")
    assert msg.startswith("bad.yaml doc 1: malformed YAML at line 6")
    assert "duplicate key 'k'" in msg


@pytest.mark.parametrize(
    ("text", "what"),
    [
        ("- a\n- b\n", 'got list ["a","b"]'),
        ("just words\n", 'got string "just words"'),
        ("42\n", "got integer 42"),
    ],
)
def test_document_that_is_not_a_mapping(text: str, what: str) -> None:
    msg = _error(POD + "---\n" + text)
    assert msg == f"bad.yaml doc 2: not a mapping: expected an object with apiVersion and kind, {what}"


def test_unknown_kind_and_api_version() -> None:
    assert _error("apiVersion: v1\nkind: Widget\nmetadata: {name: a}\n") == (
        'bad.yaml doc 1: no matches for kind "Widget" in version "v1"'
    )
    msg = _error("apiVersion: apps/v2\nkind: Deployment\nmetadata: {name: a}\n")
    assert msg.startswith('bad.yaml doc 1: no matches for kind "Deployment" in version "apps/v2"')
    assert _error("apiVersion: v1\nkind: pod\nmetadata: {name: a}\n").startswith(
        'bad.yaml doc 1: no matches for kind "pod"'
    )


def test_missing_or_mistyped_api_version_and_kind() -> None:
    assert _error("kind: Pod\nmetadata: {name: a}\n") == "bad.yaml doc 1: apiVersion: required"
    assert _error("apiVersion: v1\nmetadata: {name: a}\n") == "bad.yaml doc 1: kind: required"
    assert _error("apiVersion: 1\nkind: Pod\n") == "bad.yaml doc 1: apiVersion: must be a string, got 1"


def test_article_rc_without_image_names_the_field() -> None:
    msg = _error(RC_YAML.replace("        image: nginx\n", ""), "rc.yaml")
    assert msg == "rc.yaml doc 1: spec.template.spec.containers[0].image: required"


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("replicas: 5", "replicas: five", 'spec.replicas: must be an integer, got string "five"'),
        ("replicas: 5", "replicas: true", "spec.replicas: must be an integer, got boolean true"),
        (
            "replicas: 5",
            "replicas: -1",
            "spec.replicas: Invalid value: -1: must be greater than or equal to 0",
        ),
        (
            "containers:\n      - name: nginx\n        image: nginx\n        ports:\n        - containerPort: 80\n",
            "containers: nginx\n",
            'spec.template.spec.containers: must be a list, got string "nginx"',
        ),
        (
            "containerPort: 80",
            "containerPort: eighty",
            'spec.template.spec.containers[0].ports[0].containerPort: must be an integer, got string "eighty"',
        ),
        (
            "containerPort: 80",
            "containerPort: 70000",
            "spec.template.spec.containers[0].ports[0].containerPort: Invalid value: 70000: must be between 1 and 65535, inclusive",
        ),
        (
            "  selector:\n    app: nginx\n",
            "  selector: nginx\n",
            'spec.selector: must be a mapping, got string "nginx"',
        ),
    ],
)
def test_wrongly_typed_fields_in_the_article_rc(old: str, new: str, expected: str) -> None:
    assert old in RC_YAML
    assert _error(RC_YAML.replace(old, new), "rc.yaml") == f"rc.yaml doc 1: {expected}"


def test_rc_selector_not_matching_template_labels_is_rejected() -> None:
    text = RC_YAML.replace("  selector:\n    app: nginx\n", "  selector:\n    app: web\n")
    assert _error(text, "rc.yaml") == (
        'rc.yaml doc 1: spec.template.metadata.labels: Invalid value: {"app":"nginx"}: '
        "`selector` does not match template `labels`"
    )


def test_invalid_names_and_labels() -> None:
    msg = _error(RC_YAML.replace("name: nginx-test-controller", "name: Nginx_Controller"))
    assert msg.startswith(
        'bad.yaml doc 1: metadata.name: Invalid value: "Nginx_Controller": a lowercase RFC 1123 subdomain'
    )
    msg = _error(SVC_YAML.replace("name: nginx-http-service", "name: 8000-service"))
    assert msg.startswith('bad.yaml doc 1: metadata.name: Invalid value: "8000-service": a DNS-1035 label')
    msg = _error(RC_YAML.replace("name: nginx-test-controller", "name: " + "a" * 254))
    assert "must be no more than 253 characters" in msg
    msg = _error("apiVersion: v1\nkind: Namespace\nmetadata: {name: team.a}\n")
    assert msg.startswith(
        'bad.yaml doc 1: metadata.name: Invalid value: "team.a": a lowercase RFC 1123 label'
    )
    msg = _error(
        RC_YAML.replace("      labels:\n        app: nginx\n", "      labels:\n        app: nginx!\n")
    )
    assert 'spec.template.metadata.labels[app]: Invalid value: "nginx!": a valid label must be' in msg
    msg = _error(POD.replace("name: web\n", "name: web\n  labels: {'bad key': x}\n", 1))
    assert msg.startswith('bad.yaml doc 1: metadata.labels: Invalid value: "bad key": name part must consist')
    msg = _error(POD.replace("name: web\n", "name: web\n  namespace: Team_A\n", 1))
    assert msg.startswith('bad.yaml doc 1: metadata.namespace: Invalid value: "Team_A"')


def test_several_field_errors_are_reported_together() -> None:
    text = POD.replace(
        "name: web\n    image: busybox:1.36", "name: Web\n    image: ''\n    ports: [{containerPort: 0}]"
    )
    with pytest.raises(Invalid) as info:
        load_manifests(text, "p.yaml")
    paths = [e.path for e in info.value.errors]
    assert paths == [
        "spec.containers[0].name",
        "spec.containers[0].image",
        "spec.containers[0].ports[0].containerPort",
    ]
    assert info.value.source == "p.yaml doc 1"
    assert info.value.kind == "Pod"


def test_duplicate_objects_name_both_documents() -> None:
    text = POD + "---\n" + SVC_YAML + "---\n" + POD.replace("busybox:1.36", "busybox:1.37")
    assert _error(text) == "bad.yaml doc 3: duplicate object Pod default/web (already defined in doc 1)"
    # the same name in another namespace or of another kind is fine
    other_ns = POD.replace("name: web\n", "name: web\n  namespace: team-a\n", 1)
    assert len(load_manifests(POD + "---\n" + other_ns)) == 2
    explicit_default = POD.replace("name: web\n", "name: web\n  namespace: default\n", 1)
    assert _error(POD + "---\n" + explicit_default).startswith(
        "bad.yaml doc 2: duplicate object Pod default/web"
    )


def test_generate_name_objects_are_not_duplicates() -> None:
    gen = POD.replace("name: web\n", "generateName: web-\n", 1)
    objs = load_manifests(gen + "---\n" + gen)
    assert len(objs) == 2


def test_object_over_one_and_a_half_mebibytes_is_too_large() -> None:
    assert API_MAX_OBJECT_BYTES == MAX_VALUE_BYTES == 3 * 512 * 1024
    big = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "big"},
        "data": {"blob": "x" * API_MAX_OBJECT_BYTES},
    }
    with pytest.raises(TooLarge) as info:
        load_manifests(POD + "---\n" + json.dumps(big), "big.yaml")
    assert str(info.value).startswith("big.yaml doc 2: object is too large:")
    assert str(info.value) == (
        f"big.yaml doc 2: object is too large: more than {API_MAX_OBJECT_BYTES} bytes (1.5 MiB) serialized"
    )
    # just under the limit is fine (a pod: ConfigMap data has its own 1 MiB limit)
    pod = yaml.safe_load(POD)
    pod["spec"]["containers"][0]["env"] = [{"name": "BLOB", "value": "x" * (API_MAX_OBJECT_BYTES - 600)}]
    [loaded] = load_manifests(json.dumps(pod))
    assert serialization.object_size(loaded) <= API_MAX_OBJECT_BYTES


def test_alias_bomb_is_refused_quickly() -> None:
    lines = ["apiVersion: v1", "kind: ConfigMap", "metadata: {name: bomb}", 'a0: &a0 ["xxxxxxxxxx"]']
    for i in range(1, 30):  # 2**29 leaves once expanded
        lines.append(f"a{i}: &a{i} [*a{i - 1}, *a{i - 1}]")
    lines.append("data: {k: v}")
    lines.append("extra: *a29")
    with pytest.raises(TooLarge, match=r"^bomb\.yaml doc 1: object is too large"):
        load_manifests("\n".join(lines) + "\n", "bomb.yaml")


def test_yaml_anchors_do_not_share_dicts_between_objects() -> None:
    text = (
        "apiVersion: v1\nkind: Pod\nmetadata: {name: a}\nspec:\n  containers:\n"
        "  - {name: c1, image: x, ports: &ports [{containerPort: 80}]}\n"
        "  - {name: c2, image: x, ports: *ports}\n"
    )
    [pod] = load_manifests(text)
    c1, c2 = pod["spec"]["containers"]
    assert c1["ports"] == c2["ports"] == [{"containerPort": 80, "protocol": "TCP"}]
    assert c1["ports"] is not c2["ports"]


def test_dump_yaml_quotes_number_like_strings_for_yaml_1_2_readers() -> None:
    obj = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "default"}}
    obj["data"] = {"a": "1e3", "b": "0o17", "c": "0x1F", "d": "1_000", "e": ".5", "f": "v1.2"}
    text = dump_yaml(obj)
    for line in ("a: '1e3'", "b: '0o17'", "c: '0x1F'", "d: '1_000'", "e: '.5'", "f: v1.2"):
        assert f"  {line}\n" in text
    assert load_manifests(text) == [obj]


def test_load_file_errors_name_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ManifestError, match=rf"^cannot read {missing}: no such file$"):
        load_file(str(missing))
    with pytest.raises(ManifestError, match=rf"^cannot read {tmp_path}: is a directory$"):
        load_file(str(tmp_path))
    binary = tmp_path / "bin.yaml"
    binary.write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(ManifestError, match=rf"^cannot read {binary}: not UTF-8 text"):
        load_file(str(binary))
    bad = tmp_path / "rc.yaml"
    bad.write_text(RC_YAML.replace("        image: nginx\n", ""))
    with pytest.raises(
        Invalid, match=rf"^{bad} doc 1: spec\.template\.spec\.containers\[0\]\.image: required$"
    ):
        load_file(str(bad))


def test_load_file_dash_reads_stdin(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(SVC_YAML))
    [svc] = load_file("-")
    assert svc["metadata"]["name"] == "nginx-http-service"
    monkeypatch.setattr("sys.stdin", io.StringIO("kind: Pod\n"))
    with pytest.raises(ManifestError, match=r"^<stdin> doc 1: apiVersion: required$"):
        load_file("-")


def test_uses_the_c_loader_when_available() -> None:
    if hasattr(yaml, "CSafeLoader"):
        assert issubclass(serialization._Loader, yaml.CSafeLoader)


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("  replicas: 5", "  replica: 5", 'spec.replica: unknown field (did you mean "replicas"?)'),
        (
            "        image: nginx",
            "        imgae: nginx",
            'spec.template.spec.containers[0].imgae: unknown field (did you mean "image"?)',
        ),
        (
            "        - containerPort: 80",
            "        - containerport: 80",
            'spec.template.spec.containers[0].ports[0].containerport: unknown field (did you mean "containerPort"?)',
        ),
        (
            "metadata:\n  name:",
            "metadata:\n  nmae: x\n  name:",
            'metadata.nmae: unknown field (did you mean "name"?)',
        ),
        ("spec:\n  replicas", "specs: {}\nspec:\n  replicas", 'specs: unknown field (did you mean "spec"?)'),
        ("  template:", "  foo: 1\n  template:", "spec.foo: unknown field"),
    ],
)
def test_unknown_fields_are_rejected_with_a_hint(old: str, new: str, expected: str) -> None:
    assert old in RC_YAML
    assert _error(RC_YAML.replace(old, new, 1), "rc.yaml") == f"rc.yaml doc 1: {expected}"


def test_unknown_fields_in_service_and_open_shapes() -> None:
    msg = _error(SVC_YAML.replace("targetPort: 80", "targetport: 80"), "svc.yaml")
    assert msg == 'svc.yaml doc 1: spec.ports[0].targetport: unknown field (did you mean "targetPort"?)'
    # shapes the table leaves open (securityContext, affinity, status) accept anything
    pod = yaml.safe_load(POD)
    pod["spec"]["securityContext"] = {"runAsUser": 1000, "anything": True}
    pod["spec"]["affinity"] = {"nodeAffinity": {}}
    pod["status"] = {"phase": "Pending", "whatever": 1}
    assert len(load_manifests(json.dumps(pod))) == 1


# --- bounds on what a manifest may be --------------------------------------------------------------


def test_metadata_that_is_not_an_object_is_a_field_error() -> None:
    text = "apiVersion: v1\nkind: Pod\nmetadata: [1, 2]\nspec: {containers: [{name: a, image: b}]}\n"
    with pytest.raises(Invalid) as info:
        load_manifests(text, "pod.yaml")
    assert str(info.value).startswith("pod.yaml doc 1: metadata: must be a mapping, got list [1,2]")


def test_integral_float_in_a_file_is_an_integer_as_kubectl_sends_it() -> None:
    text = (
        "apiVersion: v1\nkind: ReplicationController\nmetadata: {name: web}\n"
        "spec: {replicas: 3.0, selector: {app: web}, template: {metadata: {labels: {app: web}},"
        " spec: {containers: [{name: a, image: busybox}]}}}\n"
    )
    [rc] = load_manifests(text, "rc.yaml")
    assert rc["spec"]["replicas"] == 3 and isinstance(rc["spec"]["replicas"], int)
    with pytest.raises(Invalid, match=r"spec.replicas: must be an integer, got number 3.5"):
        load_manifests(text.replace("3.0", "3.5"), "rc.yaml")


def test_a_link_to_dev_zero_is_read_only_up_to_the_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(serialization, "MAX_MANIFEST_BYTES", 1024)
    link = tmp_path / "zero.yaml"
    link.symlink_to("/dev/zero")
    with pytest.raises(TooLarge, match=r"^cannot read .*zero.yaml: larger than"):
        serialization.load_file(str(link))


def test_a_file_over_the_limit_is_refused_naming_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(serialization, "MAX_MANIFEST_BYTES", 100)
    big = tmp_path / "big.yaml"
    big.write_text("# " + "x" * 200 + "\n")
    with pytest.raises(TooLarge, match="big.yaml"):
        serialization.load_file(str(big))
    small = tmp_path / "small.yaml"
    small.write_text("# nothing\n")
    assert serialization.load_file(str(small)) == []


@pytest.mark.parametrize("levels", [150, 5000])
def test_deeply_nested_yaml_is_a_manifest_error(levels: int) -> None:
    # libyaml itself stops at 1000 levels; below that the loader's own limit of 100 applies
    with pytest.raises(ManifestError, match=r"^deep.yaml doc 1: malformed YAML.*nest"):
        load_manifests("a: " + "[" * levels + "]" * levels + "\n", "deep.yaml")
