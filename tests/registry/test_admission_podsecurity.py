"""Pod Security admission: each check at its level, enforce / warn / audit, templates, namespaces,
the cluster defaults and exemptions, with upstream's wording."""

from __future__ import annotations

import copy
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from nbkube.errors import BadRequest, Forbidden, Invalid
from nbkube.registry.admission_chain import default_admission_plugins
from nbkube.registry.admission_podsecurity import parse_pod_security
from nbkube.registry.podsecurity_checks import evaluate
from nbkube.registry.registry import Registry
from nbkube.registry.warnings import capture_warnings
from nbkube.store import open_store

PSA = "pod-security.kubernetes.io/"


def make_api(pod_security: Any = None) -> Registry:
    return Registry(
        open_store("sqlite://:memory:"), admission=default_admission_plugins(pod_security=pod_security)
    )


@pytest.fixture
def api() -> Iterator[Registry]:
    reg = make_api()
    yield reg
    reg.close()


def namespace(api: Registry, name: str, **levels: str) -> None:
    labels = {PSA + mode.replace("_", "-"): level for mode, level in levels.items()}
    api.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}})


def pod(name: str = "x", ns: str = "default", **spec: Any) -> dict[str, Any]:
    containers = spec.pop("containers", None) or [{"name": "c", "image": "busybox"}]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"containers": containers, **spec},
    }


RESTRICTED_OK: dict[str, Any] = {
    "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
    "containers": [
        {
            "name": "c",
            "image": "busybox",
            "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
        }
    ],
}


def restricted_pod(name: str = "x", ns: str = "default", **changes: Any) -> dict[str, Any]:
    spec = copy.deepcopy(RESTRICTED_OK)
    container_sc = changes.pop("container_sc", {})
    spec["containers"][0]["securityContext"].update(container_sc)
    spec["securityContext"].update(changes.pop("pod_sc", {}))
    spec.update(changes)
    return pod(name, ns, **spec)


def reasons(level: str, obj: dict[str, Any]) -> list[str]:
    return [r for r, _d in evaluate(level, obj["metadata"], obj["spec"])]


def details(level: str, obj: dict[str, Any]) -> dict[str, str]:
    return dict(evaluate(level, obj["metadata"], obj["spec"]))


# --- the checks, one by one ------------------------------------------------------------------------


def c(**sc: Any) -> list[dict[str, Any]]:
    return [{"name": "c", "image": "busybox", "securityContext": sc}]


@pytest.mark.parametrize(
    "spec, meta, reason, detail",
    [
        ({"hostNetwork": True, "hostPID": True}, {}, "host namespaces", "hostNetwork=true, hostPID=true"),
        ({"hostIPC": True}, {}, "host namespaces", "hostIPC=true"),
        (
            {"containers": c(privileged=True)},
            {},
            "privileged",
            'container "c" must not set securityContext.privileged=true',
        ),
        (
            {"containers": c(capabilities={"add": ["NET_ADMIN", "CHOWN", "SYS_ADMIN"]})},
            {},
            "non-default capabilities",
            'container "c" must not include "NET_ADMIN", "SYS_ADMIN" in securityContext.capabilities.add',
        ),
        ({"volumes": [{"name": "root", "hostPath": {"path": "/"}}]}, {}, "hostPath volumes", 'volume "root"'),
        (
            {"containers": [{"name": "c", "image": "b", "ports": [{"containerPort": 80, "hostPort": 8080}]}]},
            {},
            "hostPort",
            'container "c" uses hostPort 8080',
        ),
        (
            {},
            {"annotations": {"container.apparmor.security.beta.kubernetes.io/c": "unconfined"}},
            "forbidden AppArmor profile",
            'container.apparmor.security.beta.kubernetes.io/c="unconfined"',
        ),
        (
            {"securityContext": {"appArmorProfile": {"type": "Unconfined"}}},
            {},
            "forbidden AppArmor profile",
            'pod must not set securityContext.appArmorProfile.type to "Unconfined"',
        ),
        (
            {"containers": c(seLinuxOptions={"type": "spc_t", "user": "root"})},
            {},
            "seLinuxOptions",
            'container "c" set forbidden securityContext.seLinuxOptions: type "spc_t"; user may not be set',
        ),
        (
            {"containers": c(procMount="Unmasked")},
            {},
            "procMount",
            'container "c" must not set securityContext.procMount to "Unmasked"',
        ),
        (
            {"securityContext": {"seccompProfile": {"type": "Unconfined"}}},
            {},
            "seccompProfile",
            'pod must not set securityContext.seccompProfile.type to "Unconfined"',
        ),
        (
            {
                "securityContext": {
                    "sysctls": [
                        {"name": "kernel.msgmax", "value": "1"},
                        {"name": "net.ipv4.tcp_syncookies", "value": "1"},
                    ]
                }
            },
            {},
            "forbidden sysctls",
            "kernel.msgmax",
        ),
        (
            {"containers": c(windowsOptions={"hostProcess": True})},
            {},
            "hostProcess",
            'container "c" must not set securityContext.windowsOptions.hostProcess=true',
        ),
        (
            {
                "containers": [
                    {
                        "name": "c",
                        "image": "b",
                        "livenessProbe": {"httpGet": {"port": 80, "host": "10.0.0.1"}},
                    }
                ]
            },
            {},
            "probe or lifecycle host",
            'container "c" uses probe or lifecycle host "10.0.0.1"',
        ),
    ],
)
def test_each_baseline_check_names_what_is_wrong(
    spec: dict[str, Any], meta: dict[str, Any], reason: str, detail: str
) -> None:
    obj = pod(**spec)
    obj["metadata"].update(meta)
    assert details("baseline", obj) == {reason: detail}
    assert details("privileged", obj) == {}


def test_baseline_allows_a_plain_pod_and_the_default_capabilities() -> None:
    obj = pod(
        containers=c(
            capabilities={"add": ["CHOWN", "NET_BIND_SERVICE"]}, seccompProfile={"type": "RuntimeDefault"}
        )
    )
    assert evaluate("baseline", obj["metadata"], obj["spec"]) == []


def test_restricted_checks_and_their_wording() -> None:
    obj = pod(containers=[{"name": "c", "image": "busybox"}, {"name": "d", "image": "busybox"}])
    assert evaluate("restricted", obj["metadata"], obj["spec"]) == [
        (
            "allowPrivilegeEscalation != false",
            'containers "c", "d" must set securityContext.allowPrivilegeEscalation=false',
        ),
        (
            "unrestricted capabilities",
            'containers "c", "d" must set securityContext.capabilities.drop=["ALL"]',
        ),
        ("runAsNonRoot != true", 'pod or containers "c", "d" must set securityContext.runAsNonRoot=true'),
        (
            "seccompProfile",
            'pod or containers "c", "d" must set securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost"',
        ),
    ]
    assert evaluate("restricted", restricted_pod()["metadata"], restricted_pod()["spec"]) == []


@pytest.mark.parametrize(
    "changes, reason, detail",
    [
        ({"container_sc": {"runAsUser": 0}}, "runAsUser=0", 'container "c" must not set runAsUser=0'),
        ({"pod_sc": {"runAsUser": 0}}, "runAsUser=0", "pod must not set runAsUser=0"),
        (
            {"container_sc": {"runAsNonRoot": False}},
            "runAsNonRoot != true",
            'container "c" must not set securityContext.runAsNonRoot=false',
        ),
        (
            {"container_sc": {"capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE", "CHOWN"]}}},
            "unrestricted capabilities",
            'container "c" must not include "CHOWN" in securityContext.capabilities.add',
        ),
        (
            {"volumes": [{"name": "data", "nfs": {"server": "s", "path": "/"}}]},
            "restricted volume types",
            'volume "data" uses restricted volume type "nfs"',
        ),
        (
            {"container_sc": {"allowPrivilegeEscalation": True}},
            "allowPrivilegeEscalation != false",
            'container "c" must set securityContext.allowPrivilegeEscalation=false',
        ),
        (
            {"container_sc": {"seccompProfile": {"type": "Unconfined"}}},
            "seccompProfile",
            'container "c" must not set securityContext.seccompProfile.type to "Unconfined"',
        ),
    ],
)
def test_each_restricted_check(changes: dict[str, Any], reason: str, detail: str) -> None:
    obj = restricted_pod(**changes)
    assert details("restricted", obj) == {reason: detail}


def test_restricted_replaces_the_baseline_volume_capability_and_seccomp_checks() -> None:
    obj = restricted_pod(volumes=[{"name": "root", "hostPath": {"path": "/"}}])
    assert reasons("restricted", obj) == ["restricted volume types"]
    assert (
        details("restricted", obj)["restricted volume types"]
        == 'volume "root" uses restricted volume type "hostPath"'
    )
    assert reasons("baseline", obj) == ["hostPath volumes"]


def test_restricted_also_applies_the_baseline_checks_first() -> None:
    obj = restricted_pod(hostNetwork=True, container_sc={"privileged": True})
    assert reasons("restricted", obj) == ["host namespaces", "privileged"]


# --- enforce, warn, audit --------------------------------------------------------------------------


def test_enforce_refuses_with_upstreams_message(api: Registry) -> None:
    namespace(api, "locked", enforce="restricted")
    with pytest.raises(Forbidden) as err:
        api.create(pod("x", "locked"))
    assert err.value.code == 403
    assert str(err.value) == (
        'pods "x" is forbidden: violates PodSecurity "restricted:latest": '
        'allowPrivilegeEscalation != false (container "c" must set securityContext.allowPrivilegeEscalation=false), '
        'unrestricted capabilities (container "c" must set securityContext.capabilities.drop=["ALL"]), '
        'runAsNonRoot != true (pod or container "c" must set securityContext.runAsNonRoot=true), '
        'seccompProfile (pod or container "c" must set securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost")'
    )
    assert api.list("Pod", "locked")[0] == []
    created = api.create(restricted_pod("ok", "locked"))
    assert created["metadata"]["name"] == "ok"


def test_baseline_namespace_refuses_a_host_root_mount(api: Registry) -> None:
    namespace(api, "team", enforce="baseline", enforce_version="v1.30")
    with pytest.raises(
        Forbidden, match=r'violates PodSecurity "baseline:v1.30": hostPath volumes \(volume "root"\)'
    ):
        api.create(pod("x", "team", volumes=[{"name": "root", "hostPath": {"path": "/"}}]))
    with pytest.raises(
        Forbidden, match=r"privileged \(container \"c\" must not set securityContext.privileged=true\)"
    ):
        api.create(pod("y", "team", containers=c(privileged=True)))
    assert api.create(pod("z", "team"))["metadata"]["name"] == "z"


def test_warn_lets_the_pod_in_and_says_why(api: Registry) -> None:
    namespace(api, "soft", warn="baseline")
    with capture_warnings() as warnings:
        api.create(pod("x", "soft", hostNetwork=True))
    assert warnings == ['would violate PodSecurity "baseline:latest": host namespaces (hostNetwork=true)']
    with capture_warnings() as warnings:
        api.create(pod("y", "soft"))
    assert warnings == []


def test_a_warning_nobody_captures_is_logged(api: Registry, caplog: pytest.LogCaptureFixture) -> None:
    namespace(api, "soft", warn="baseline")
    with caplog.at_level(logging.WARNING, logger="nbkube.registry.warnings"):
        api.create(pod("x", "soft", hostPID=True))
    assert 'would violate PodSecurity "baseline:latest": host namespaces (hostPID=true)' in caplog.text


def test_audit_writes_a_log_line(api: Registry, caplog: pytest.LogCaptureFixture) -> None:
    namespace(api, "watched", audit="restricted")
    with caplog.at_level(logging.WARNING, logger="nbkube.audit.podsecurity"):
        api.create(pod("x", "watched", containers=c(privileged=True)))
    line = next(r.getMessage() for r in caplog.records if r.name == "nbkube.audit.podsecurity")
    assert line.startswith(
        'pods "x" in namespace "watched" would violate PodSecurity "restricted:latest": privileged'
    )


def test_pod_updates_are_judged_again_only_when_an_image_changes(api: Registry) -> None:
    api.create(
        pod(
            "x",
            "default",
            containers=[{"name": "c", "image": "busybox", "securityContext": {"privileged": True}}],
        )
    )
    labels = {PSA + "enforce": "baseline"}
    api.patch("Namespace", "default", "", {"metadata": {"labels": labels}})
    bound = api.patch("Pod", "x", "default", {"spec": {"nodeName": "node-1"}})  # a binding goes through
    assert bound["spec"]["nodeName"] == "node-1"
    with pytest.raises(Forbidden, match="privileged"):
        api.patch(
            "Pod",
            "x",
            "default",
            {
                "spec": {
                    "containers": [
                        {"name": "c", "image": "busybox:1.36", "securityContext": {"privileged": True}}
                    ]
                }
            },
        )


# --- pod templates ---------------------------------------------------------------------------------


def deployment(name: str, ns: str, **spec: Any) -> dict[str, Any]:
    template = pod("ignored", ns, **spec)
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": template["spec"]},
        },
    }


def test_workload_templates_are_warned_about_never_refused(api: Registry) -> None:
    namespace(api, "locked", enforce="baseline", warn="restricted")
    with capture_warnings() as warnings:
        api.create(deployment("web", "locked", hostNetwork=True))
    assert warnings[0] == 'would violate PodSecurity "baseline:latest": host namespaces (hostNetwork=true)'
    assert warnings[1].startswith(
        'would violate PodSecurity "restricted:latest": host namespaces (hostNetwork=true), allowPrivilegeEscalation != false'
    )
    with capture_warnings() as warnings:  # a scale leaves the template alone: nothing to say
        api.patch("Deployment", "web", "locked", {"spec": {"replicas": 3}})
    assert warnings == []


def test_replication_controller_and_replicaset_templates_too(api: Registry) -> None:
    namespace(api, "soft", warn="baseline")
    rc = {
        "apiVersion": "v1",
        "kind": "ReplicationController",
        "metadata": {"name": "rc", "namespace": "soft"},
        "spec": {
            "replicas": 1,
            "selector": {"a": "b"},
            "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": c(privileged=True)}},
        },
    }
    rs = copy.deepcopy(rc)
    rs.update(apiVersion="apps/v1", kind="ReplicaSet")
    rs["spec"]["selector"] = {"matchLabels": {"a": "b"}}
    for obj in (rc, rs):
        with capture_warnings() as warnings:
            api.create(obj)
        assert warnings == [
            'would violate PodSecurity "baseline:latest": privileged (container "c" must not set securityContext.privileged=true)'
        ]


# --- namespaces, defaults, exemptions --------------------------------------------------------------


def test_unknown_levels_and_versions_are_field_errors_on_the_namespace(api: Registry) -> None:
    with pytest.raises(Invalid) as err:
        namespace(api, "bad", enforce="strict", warn_version="1.30")
    assert [str(e) for e in err.value.errors] == [
        'metadata.labels[pod-security.kubernetes.io/enforce]: Invalid value: "strict": must be one of privileged, baseline, restricted',
        'metadata.labels[pod-security.kubernetes.io/warn-version]: Invalid value: "1.30": must be "latest" or "v1.x"',
    ]
    with pytest.raises(Invalid):
        api.apply(
            [
                {
                    "apiVersion": "v1",
                    "kind": "Namespace",
                    "metadata": {"name": "b2", "labels": {PSA + "audit": "none"}},
                }
            ]
        )
    namespace(
        api, "good", enforce="restricted", enforce_version="v1.31", warn="baseline", audit_version="latest"
    )


def test_tightening_a_namespace_names_the_pods_that_would_now_be_refused(api: Registry) -> None:
    namespace(api, "team")
    for name in ("a", "b"):
        api.create(pod(name, "team", hostNetwork=True))
    api.create(pod("c", "team", containers=c(privileged=True)))
    api.create(pod("d", "team"))
    with capture_warnings() as warnings:
        api.patch("Namespace", "team", "", {"metadata": {"labels": {PSA + "enforce": "baseline"}}})
    assert warnings == [
        'existing pods in namespace "team" violate the new PodSecurity enforce level "baseline:latest"',
        "a (and 1 other pod): host namespaces",
        "c: privileged",
    ]
    assert len(api.list("Pod", "team")[0]) == 4  # nothing is evicted


def test_the_cluster_default_applies_where_a_namespace_says_nothing() -> None:
    api = make_api("baseline")
    try:
        namespace(api, "plain")
        with pytest.raises(Forbidden, match=r'violates PodSecurity "baseline:latest": host namespaces'):
            api.create(pod("x", "plain", hostNetwork=True))
        namespace(api, "open", enforce="privileged")  # a label overrides the default
        api.create(pod("x", "open", hostNetwork=True))
        api.create(pod("x", "kube-system", hostNetwork=True))  # exempt by default, as configured upstream
    finally:
        api.close()


def test_exemptions_are_configurable() -> None:
    api = Registry(
        open_store("sqlite://:memory:"),
        admission=[*default_admission_plugins(pod_security={"enforce": "restricted"})],
    )
    plugin = next(p for p in api.admission if type(p).__name__ == "PodSecurityAdmission")
    plugin.config = parse_pod_security("enforce=restricted", exempt_namespaces=())
    try:
        with pytest.raises(Forbidden):
            api.create(pod("x", "kube-system"))
    finally:
        api.close()


def test_parse_pod_security() -> None:
    assert str(parse_pod_security(None).enforce) == "privileged:latest"
    config = parse_pod_security("enforce=baseline:v1.30, warn=restricted")
    assert (str(config.enforce), str(config.warn), str(config.audit)) == (
        "baseline:v1.30",
        "restricted:latest",
        "privileged:latest",
    )
    assert config.exempt_namespaces == frozenset({"kube-system"})
    for bad, message in (
        ("strict", "level must be one of privileged, baseline, restricted"),
        ("enforce=baseline:1.2", 'version must be "latest" or "v1.x"'),
        ("deny=baseline", "mode must be one of enforce, warn, audit"),
    ):
        with pytest.raises(BadRequest, match=message):
            parse_pod_security(bad)
