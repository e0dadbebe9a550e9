"""`nbkube apply/get/describe/delete/version` in-process on a scratch SQLite store."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import yaml
from nbk_clitest import RC_YAML, SVC_YAML, Run

from nbkube.cli.context import open_registry
from nbkube.client.events import record_event

POD = """\
apiVersion: v1
kind: Pod
metadata:
  name: {name}
  labels: {labels}
spec:
  containers:
  - name: main
    image: busybox
"""


def _apply_article(nbkube: Run) -> None:
    r = nbkube("apply", "-f", RC_YAML, "-f", SVC_YAML)
    assert r.code == 0, r.err
    assert r.out.splitlines() == [
        "replicationcontroller/nginx-test-controller created",
        "service/nginx-http-service created",
    ]


def test_apply_article_manifests_then_get_rc_svc(nbkube: Run) -> None:
    _apply_article(nbkube)
    r = nbkube("get", "rc,svc")
    assert r.code == 0
    lines = r.out.splitlines()
    assert lines[0].split() == ["NAME", "DESIRED", "CURRENT", "READY", "AGE"]
    assert lines[1].split()[:2] == ["replicationcontroller/nginx-test-controller", "5"]
    assert lines[2] == ""
    assert lines[3].split() == ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"]
    svc = lines[4].split()
    assert svc[0] == "service/nginx-http-service"
    assert svc[1] == "NodePort"
    assert svc[4] == "8000:30001/TCP"


def test_apply_twice_is_unchanged_and_keeps_resource_versions(nbkube: Run) -> None:
    _apply_article(nbkube)
    before = json.loads(nbkube("get", "rc,svc", "-o", "json").out)
    r = nbkube("apply", "-f", RC_YAML, "-f", SVC_YAML)
    assert r.code == 0
    assert r.out.splitlines() == [
        "replicationcontroller/nginx-test-controller unchanged",
        "service/nginx-http-service unchanged",
    ]
    after = json.loads(nbkube("get", "rc,svc", "-o", "json").out)
    rv = [o["metadata"]["resourceVersion"] for o in before["items"]]
    assert rv == [o["metadata"]["resourceVersion"] for o in after["items"]]


def test_apply_changed_manifest_prints_configured(nbkube: Run, tmp_path: Path) -> None:
    _apply_article(nbkube)
    changed = tmp_path / "rc.yaml"
    changed.write_text(Path(RC_YAML).read_text().replace("replicas: 5", "replicas: 3"))
    r = nbkube("apply", "-f", str(changed))
    assert r.out.strip() == "replicationcontroller/nginx-test-controller configured"
    rc = json.loads(nbkube("get", "rc", "nginx-test-controller", "-o", "json").out)
    assert rc["spec"]["replicas"] == 3


def test_output_json_shapes(nbkube: Run) -> None:
    _apply_article(nbkube)
    listed = json.loads(nbkube("get", "rc", "-o", "json").out)
    assert listed["apiVersion"] == "v1"
    assert listed["kind"] == "List"
    assert [o["metadata"]["name"] for o in listed["items"]] == ["nginx-test-controller"]
    one = json.loads(nbkube("get", "svc", "nginx-http-service", "-o", "json").out)
    assert one["kind"] == "Service"
    assert one["spec"]["ports"][0]["nodePort"] == 30001


def test_output_yaml_and_name(nbkube: Run) -> None:
    _apply_article(nbkube)
    one = yaml.safe_load(nbkube("get", "rc/nginx-test-controller", "-o", "yaml").out)
    assert one["kind"] == "ReplicationController"
    assert one["spec"]["replicas"] == 5
    many = yaml.safe_load(nbkube("get", "rc,svc", "-o", "yaml").out)
    assert many["kind"] == "List" and len(many["items"]) == 2
    r = nbkube("get", "rc,svc", "-o", "name")
    assert r.out.splitlines() == ["replicationcontroller/nginx-test-controller", "service/nginx-http-service"]


def test_get_pods_by_label_selector(nbkube: Run, tmp_path: Path) -> None:
    f = tmp_path / "pods.yaml"
    f.write_text(
        POD.format(name="web-1", labels="{app: nginx}")
        + "---\n"
        + POD.format(name="db-1", labels="{app: db}")
    )
    assert nbkube("apply", "-f", str(f)).code == 0
    r = nbkube("get", "po", "-l", "app=nginx")
    assert r.code == 0
    lines = r.out.splitlines()
    assert lines[0].split() == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert [line.split()[0] for line in lines[1:]] == ["web-1"]
    wide = nbkube("get", "pods", "-o", "wide").out.splitlines()
    assert wide[0].split() == ["NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "NODE"]
    assert len(wide) == 3
    none = nbkube("get", "po", "-l", "app=nothing")
    assert none.code == 0 and none.out == ""
    assert none.err.strip() == "No resources found in default namespace."


def test_all_namespaces_adds_namespace_column(nbkube: Run) -> None:
    _apply_article(nbkube)
    r = nbkube("get", "svc", "-A")
    assert r.out.splitlines()[0].split()[:2] == ["NAMESPACE", "NAME"]
    assert r.out.splitlines()[1].split()[:2] == ["default", "nginx-http-service"]


def test_store_option_before_and_after_the_verb(nbkube: Run, tmp_path: Path) -> None:
    other = f"sqlite://{tmp_path / 'other.db'}"
    r = nbkube("--store", other, "apply", "-f", RC_YAML)
    assert r.code == 0 and "created" in r.out
    after = nbkube("get", "rc", "--store", other)
    assert "nginx-test-controller" in after.out
    assert "nginx-test-controller" in nbkube("get", f"--store={other}", "rc").out
    # the default store (NBKUBE_STORE) was not touched
    untouched = nbkube("get", "rc")
    assert untouched.out == "" and "No resources found" in untouched.err


def test_store_from_environment(nbkube: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env_url = f"sqlite://{tmp_path / 'env.db'}"
    monkeypatch.setenv("NBKUBE_STORE", env_url)
    assert nbkube("apply", "-f", SVC_YAML).code == 0
    assert (tmp_path / "env.db").exists()
    assert "nginx-http-service" in nbkube("--store", env_url, "get", "svc").out


def test_default_store_lives_under_home(nbkube: Run, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("NBKUBE_STORE")
    assert nbkube("apply", "-f", SVC_YAML).code == 0
    assert (tmp_path / "home" / ".nbkube" / "store.db").exists()
    assert "sqlite:///" in nbkube("version").out


def test_apply_from_stdin(nbkube: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(Path(RC_YAML).read_text()))
    r = nbkube("apply", "-f", "-")
    assert r.code == 0
    assert r.out.strip() == "replicationcontroller/nginx-test-controller created"


def test_apply_directory(nbkube: Run) -> None:
    r = nbkube("apply", "-f", str(Path(RC_YAML).parent))
    assert r.code == 0
    assert sorted(r.out.splitlines()) == [
        "replicationcontroller/nginx-test-controller created",
        "service/nginx-http-service created",
    ]


def test_delete_by_name_and_by_file(nbkube: Run) -> None:
    _apply_article(nbkube)
    r = nbkube("delete", "svc", "nginx-http-service")
    assert r.code == 0
    assert r.out.strip() == 'service "nginx-http-service" deleted'
    missing = nbkube("get", "svc", "nginx-http-service")
    assert missing.code == 1
    assert missing.err_lines == ['error: services "nginx-http-service" not found']
    r = nbkube("delete", "-f", RC_YAML, "--cascade=orphan")
    assert r.code == 0
    assert r.out.strip() == 'replicationcontroller "nginx-test-controller" deleted'
    again = nbkube("delete", "rc", "nginx-test-controller")
    assert again.code == 1 and len(again.err_lines) == 1
    assert nbkube("delete", "rc", "nginx-test-controller", "--ignore-not-found").code == 0


def test_delete_by_selector(nbkube: Run, tmp_path: Path) -> None:
    f = tmp_path / "pods.yaml"
    f.write_text(POD.format(name="a", labels="{app: x}") + "---\n" + POD.format(name="b", labels="{app: y}"))
    nbkube("apply", "-f", str(f))
    r = nbkube("delete", "po", "-l", "app=x")
    assert r.out.strip() == 'pod "a" deleted'
    assert nbkube("get", "po", "-o", "name").out.splitlines() == ["pod/b"]


def test_describe_shows_spec_and_events(nbkube: Run, store_url: str) -> None:
    _apply_article(nbkube)
    api = open_registry(store_url)
    try:
        rc = api.get("ReplicationController", "nginx-test-controller", "default")
        record_event(
            api, rc, "SuccessfulCreate", "Created pod: nginx-test-controller-abcde", component="test"
        )
    finally:
        api.close()
    r = nbkube("describe", "rc", "nginx-test-controller")
    assert r.code == 0, r.err
    text = r.out
    assert "Name:" in text and "nginx-test-controller" in text
    assert "Replicas:" in text and "5 desired" in text
    assert "Image:" in text and "nginx" in text
    assert "SuccessfulCreate" in text and "Created pod: nginx-test-controller-abcde" in text
    assert "last-applied-configuration" not in text
    svc = nbkube("describe", "svc", "nginx").out  # a name prefix, as kubectl allows
    assert "NodePort:" in svc and "30001/TCP" in svc
    assert "Events:" in svc


def test_version_needs_no_store(nbkube: Run) -> None:
    r = nbkube("--store", "etcd://127.0.0.1:1", "version")
    assert r.code == 0
    assert r.out.startswith("nbkube version v")


def test_api_resources_lists_short_names(nbkube: Run) -> None:
    out = nbkube("api-resources").out
    assert any(line.split()[:2] == ["replicationcontrollers", "rc"] for line in out.splitlines())


def test_get_watch_prints_the_list_then_changes(
    nbkube: Run, store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from nbkube.registry.registry import Registry

    f = tmp_path / "pods.yaml"
    f.write_text(POD.format(name="first", labels="{app: w}"))
    assert nbkube("apply", "-f", str(f)).code == 0
    real_watch = Registry.watch

    def watch_then_create(self: Registry, *a: object, **kw: object) -> object:
        w = real_watch(self, *a, **kw)  # type: ignore[arg-type]
        # a change made by another client once the watch is open: -w must print it
        other = open_registry(store_url)
        try:
            other.create(yaml.safe_load(POD.format(name="second", labels="{app: w}")))
        finally:
            other.close()
        return w

    monkeypatch.setattr(Registry, "watch", watch_then_create)
    r = nbkube("get", "po", "-w", "--watch-timeout", "1.5")
    assert r.code == 0, r.err
    lines = r.out.splitlines()
    assert lines[0].split()[:2] == ["NAME", "READY"]
    assert [line.split()[0] for line in lines[1:]] == ["first", "second"]
    assert nbkube("get", "po,svc", "-w").code == 1
