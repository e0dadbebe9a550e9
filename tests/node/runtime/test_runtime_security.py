"""securityContext as runtime options (no daemon needed): what the Docker runtime asks Docker for,
field by field, and the kubelet's refusals for runAsNonRoot."""

from __future__ import annotations

from typing import Any

import pytest

from nbkube.node.runtime.security import container_context, docker_options, identity


def pod(
    sc: dict[str, Any] | None = None, pod_sc: dict[str, Any] | None = None, **meta: Any
) -> dict[str, Any]:
    c: dict[str, Any] = {"name": "c", "image": "busybox"}
    if sc is not None:
        c["securityContext"] = sc
    return {"metadata": {"name": "p", **meta}, "spec": {"securityContext": pod_sc or {}, "containers": [c]}}


def options(p: dict[str, Any], image_user: str = "") -> dict[str, Any]:
    return docker_options(p, p["spec"]["containers"][0], "spec.containers[0].securityContext", image_user)


def test_the_container_inherits_the_pods_identity_and_overrides_it() -> None:
    p = pod({"runAsUser": 7}, {"runAsUser": 5, "runAsGroup": 6, "supplementalGroups": [8], "fsGroup": 9})
    c = p["spec"]["containers"][0]
    assert container_context(p, c) == {"runAsUser": 7, "runAsGroup": 6}
    who = identity(p, c)
    assert (who.uid, who.gid, who.groups) == (7, 6, [8, 9])


def test_every_field_becomes_a_docker_option() -> None:
    p = pod(
        {
            "runAsUser": 65534,
            "runAsGroup": 65534,
            "privileged": False,
            "readOnlyRootFilesystem": True,
            "allowPrivilegeEscalation": False,
            "capabilities": {"add": ["NET_BIND_SERVICE"], "drop": ["ALL"]},
            "seccompProfile": {"type": "Unconfined"},
            "appArmorProfile": {"type": "Localhost", "localhostProfile": "my-profile"},
            "seLinuxOptions": {"type": "container_t", "level": "s0:c1"},
            "procMount": "Unmasked",
        },
        {"supplementalGroups": [100]},
    )
    assert options(p) == {
        "user": "65534:65534",
        "group_add": ["100"],
        "cap_add": ["NET_BIND_SERVICE"],
        "cap_drop": ["ALL"],
        "read_only": True,
        "security_opt": [
            "no-new-privileges:true",
            "seccomp=unconfined",
            "apparmor=my-profile",
            "label=type:container_t",
            "label=level:s0:c1",
        ],
        "host_config_extra": {"MaskedPaths": [], "ReadonlyPaths": []},
    }
    assert options(pod({"privileged": True})) == {"privileged": True}
    assert options(pod({"seccompProfile": {"type": "RuntimeDefault"}})) == {}  # Docker's default profile
    assert options(pod({"runAsGroup": 5}), image_user="1000") == {"user": "1000:5"}


def test_apparmor_annotation_is_honoured_too() -> None:
    p = pod(annotations={"container.apparmor.security.beta.kubernetes.io/c": "unconfined"})
    assert options(p) == {"security_opt": ["apparmor=unconfined"]}


@pytest.mark.parametrize(
    "sc, image_user, message",
    [
        ({"runAsNonRoot": True}, "", "container has runAsNonRoot and image will run as root"),
        ({"runAsNonRoot": True}, "root", "container has runAsNonRoot and image will run as root"),
        ({"runAsNonRoot": True}, "www", r"container has runAsNonRoot and image has non-numeric user \(www\)"),
        ({"runAsNonRoot": True, "runAsUser": 0}, "", "container's runAsUser breaks non-root policy"),
        (
            {"seccompProfile": {"type": "Localhost", "localhostProfile": "../../etc/passwd"}},
            "",
            "leaves /var/lib/kubelet/seccomp",
        ),
        (
            {"seccompProfile": {"type": "Localhost", "localhostProfile": "nbkube-missing.json"}},
            "",
            "cannot read",
        ),
    ],
)
def test_what_cannot_hold_is_refused_with_the_kubelets_words(
    sc: dict[str, Any], image_user: str, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        options(pod(sc), image_user)


def test_run_as_non_root_holds_with_a_non_root_uid() -> None:
    assert options(pod({"runAsNonRoot": True}), image_user="1000") == {}
    assert options(pod({"runAsNonRoot": True, "runAsUser": 1000})) == {"user": "1000"}


def test_the_docker_sdk_accepts_every_option() -> None:
    """The options build a create request (offline: the SDK's own argument check, no daemon)."""
    from docker.models.containers import _create_container_args

    p = pod(
        {
            "runAsUser": 65534,
            "privileged": True,
            "readOnlyRootFilesystem": True,
            "capabilities": {"add": ["NET_ADMIN"], "drop": ["ALL"]},
            "seccompProfile": {"type": "Unconfined"},
            "procMount": "Unmasked",
        },
        {"supplementalGroups": [100], "fsGroup": 200},
    )
    opts = options(p)
    extra = opts.pop("host_config_extra")
    args = _create_container_args(
        {**opts, "image": "busybox", "version": "1.41", "name": "n", "detach": True}
    )
    args["host_config"].update(extra)
    host = args["host_config"]
    assert args["user"] == "65534"
    assert host["Privileged"] is True and host["ReadonlyRootfs"] is True
    assert (host["CapAdd"], host["CapDrop"], host["GroupAdd"]) == (["NET_ADMIN"], ["ALL"], ["100", "200"])
    assert host["SecurityOpt"] == ["seccomp=unconfined"]
    assert (host["MaskedPaths"], host["ReadonlyPaths"]) == ([], [])
