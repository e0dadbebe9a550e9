"""RestClient: the registry's verbs through the API server, errors rebuilt from Status, watches,
and the CLI's `--kubeconfig` using it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from nbkube.apiserver import serve
from nbkube.cli import main
from nbkube.client.kubeconfig import load_kubeconfig
from nbkube.client.rest import RestClient
from nbkube.errors import AlreadyExists, BadRequest, Conflict, Invalid, NotFound
from nbkube.registry.registry import Registry
from nbkube.store import open_store


def _pod(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": "web"}},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]},
    }


@pytest.fixture
def served(tmp_path: Any) -> Iterator[tuple[Registry, str]]:
    reg = Registry(open_store("sqlite://:memory:"))
    srv = serve(reg, folder=str(tmp_path / "pki"))
    try:
        yield reg, srv.write_kubeconfig(str(tmp_path / "kube" / "config"))
    finally:
        srv.stop()
        reg.close()


def test_verbs_round_trip(served: tuple[Registry, str]) -> None:
    reg, kubeconfig = served
    api = RestClient(load_kubeconfig(kubeconfig))
    created = api.create(_pod("a"))
    assert created["metadata"]["uid"] == reg.get("Pod", "a", "default")["metadata"]["uid"]
    with pytest.raises(AlreadyExists):
        api.create(_pod("a"))
    items, rv = api.list("pods", "default", label_selector="app=web")
    assert [p["metadata"]["name"] for p in items] == ["a"] and int(rv) > 0
    patched = api.patch("Pod", "a", "default", {"metadata": {"labels": {"tier": "x"}}})
    assert patched["metadata"]["labels"] == {"app": "web", "tier": "x"}
    stale = dict(created)
    with pytest.raises(Conflict):
        api.update(stale)  # the patch moved the resourceVersion on
    changed = api.mutate("Pod", "a", "default", lambda p: {**p, "metadata": {**p["metadata"], "labels": {}}})
    assert not changed["metadata"].get("labels")
    api.delete("Pod", "a", "default")
    with pytest.raises(NotFound):
        api.get("Pod", "a", "default")
    api.close()


def test_invalid_carries_field_causes(served: tuple[Registry, str]) -> None:
    _, kubeconfig = served
    api = RestClient(load_kubeconfig(kubeconfig))
    bad = _pod("b")
    bad["spec"]["containers"][0]["name"] = "Not_A_Name"
    with pytest.raises(Invalid) as e:
        api.create(bad)
    assert any("containers[0].name" in fe.path for fe in e.value.errors)
    with pytest.raises(Invalid) as e:
        api.apply([_pod("ok"), bad])  # all validated first: nothing was applied
    with pytest.raises(NotFound):
        api.get("Pod", "ok", "default")


def test_apply_actions_and_watch(served: tuple[Registry, str]) -> None:
    _, kubeconfig = served
    api = RestClient(load_kubeconfig(kubeconfig))
    w = api.watch("Pod", "default")
    assert [a for _, a in api.apply([_pod("w")])] == ["created"]
    assert [a for _, a in api.apply([_pod("w")])] == ["unchanged"]
    changed = _pod("w")
    changed["metadata"]["labels"]["v"] = "2"
    assert [a for _, a in api.apply([changed])] == ["configured"]
    ev = w.next(timeout=10)
    assert ev is not None and ev.type == "ADDED" and ev.object["metadata"]["name"] == "w"
    ev = w.next(timeout=10)
    assert ev is not None and ev.type == "MODIFIED"
    w.cancel()
    assert w.next(timeout=0.1) is None


def test_apply_wins_over_other_managers_and_owns_its_fields(served: tuple[Registry, str]) -> None:
    reg, kubeconfig = served
    api = RestClient(load_kubeconfig(kubeconfig))
    first = _pod("o")
    first["metadata"]["labels"]["v"] = "1"
    reg.create(first)  # in-process: no manager recorded ("before-first-apply" to the API)
    changed = _pod("o")
    changed["metadata"]["labels"]["v"] = "2"
    ((stored, action),) = api.apply([changed])
    assert action == "configured" and stored["metadata"]["labels"]["v"] == "2"
    owners = {(e["manager"], e["operation"]) for e in stored["metadata"]["managedFields"]}
    assert ("nbkube", "Apply") in owners


def test_cli_through_the_api(served: tuple[Registry, str], tmp_path: Any, capsys: Any) -> None:
    reg, kubeconfig = served
    manifest = tmp_path / "pod.yaml"
    manifest.write_text("apiVersion: v1\nkind: Pod\nmetadata: {name: cli}\nspec: {containers: [{name: c, image: busybox}]}\n")
    assert main(["--kubeconfig", kubeconfig, "apply", "-f", str(manifest)]) == 0
    assert reg.get("Pod", "cli", "default")  # written through the server, not a store of its own
    assert main(["get", "pods", "--kubeconfig", kubeconfig]) == 0
    assert "cli" in capsys.readouterr().out
    assert main(["--kubeconfig", kubeconfig, "get", "pod", "nope"]) == 1
    assert 'pods "nope" not found' in capsys.readouterr().err
    assert main(["--kubeconfig", kubeconfig, "--store", "sqlite://:memory:", "get", "pods"]) == 2


def test_bad_kubeconfig_is_one_line(tmp_path: Any) -> None:
    path = tmp_path / "config"
    path.write_text("clusters: [\n")
    with pytest.raises(BadRequest, match="not valid YAML"):
        load_kubeconfig(str(path))
    with pytest.raises(BadRequest, match="no such file"):
        load_kubeconfig(str(tmp_path / "missing"))
