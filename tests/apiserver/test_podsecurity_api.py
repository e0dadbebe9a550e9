"""Pod Security over HTTP: enforce answers 403 Forbidden with upstream's message, warn comes back
as a `Warning` header (quotes escaped, as kubectl reads them), next to fieldValidation's."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from nbk_apitest import Kubectl, call, pod

from nbkube.apiserver import ApiServer
from nbkube.registry.admission_chain import default_admission_plugins
from nbkube.registry.registry import Registry
from nbkube.store import open_store

NS = "/api/v1/namespaces"


@pytest.fixture
def registry() -> Iterator[Registry]:
    """This module's server (conftest's `server`, `kubectl`) runs the default admission chain."""
    reg = Registry(open_store("sqlite://:memory:"), admission=default_admission_plugins())
    yield reg
    reg.close()


def namespace(name: str, **labels: str) -> dict[str, object]:
    full = {f"pod-security.kubernetes.io/{k}": v for k, v in labels.items()}
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": full}}


def privileged_pod(name: str) -> dict[str, object]:
    body = pod(name)
    body["spec"]["containers"][0]["securityContext"] = {"privileged": True}  # type: ignore[index]
    return body


def test_enforce_is_403_with_upstreams_message(server: ApiServer) -> None:
    assert call(server, "POST", NS, namespace("locked", enforce="baseline"))[0] == 201
    code, body, _ = call(server, "POST", f"{NS}/locked/pods", privileged_pod("x"))
    assert (code, body["reason"]) == (403, "Forbidden")
    assert body["message"] == (
        'pods "x" is forbidden: violates PodSecurity "baseline:latest": '
        'privileged (container "c" must not set securityContext.privileged=true)'
    )


def test_warn_becomes_warning_headers(server: ApiServer) -> None:
    call(server, "POST", NS, namespace("soft", warn="baseline"))
    typo = privileged_pod("x")
    typo["spec"]["containerz"] = []  # type: ignore[index]
    code, _, headers = call(server, "POST", f"{NS}/soft/pods?fieldValidation=Warn", typo)
    assert code == 201
    assert headers["Warning"] == (
        '299 - "spec.containerz: unknown field (did you mean \\"containers\\"?)", '
        '299 - "would violate PodSecurity \\"baseline:latest\\": '
        'privileged (container \\"c\\" must not set securityContext.privileged=true)"'
    )
    code, _, headers = call(server, "POST", f"{NS}/soft/pods", pod("y"))
    assert code == 201 and "Warning" not in headers


def test_kubectl_prints_the_warning_and_the_refusal(
    server: ApiServer, kubectl: Kubectl, tmp_path: Path
) -> None:
    call(server, "POST", NS, namespace("team", enforce="baseline", warn="restricted"))
    manifest = tmp_path / "pod.json"
    manifest.write_text(json.dumps(pod("plain") | {"metadata": {"name": "plain", "namespace": "team"}}))
    done = kubectl("apply", "-f", str(manifest))
    assert done.returncode == 0, done.stderr
    assert (
        'Warning: would violate PodSecurity "restricted:latest": allowPrivilegeEscalation != false'
        in done.stderr
    )
    bad = privileged_pod("root") | {"metadata": {"name": "root", "namespace": "team"}}
    manifest.write_text(json.dumps(bad))
    done = kubectl("apply", "-f", str(manifest))
    assert done.returncode != 0
    assert 'pods "root" is forbidden: violates PodSecurity "baseline:latest": privileged' in done.stderr
