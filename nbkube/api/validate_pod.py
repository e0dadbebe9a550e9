"""Validation of a pod spec, for Pods and for the pod templates of RCs, ReplicaSets and Deployments.

`check_pod_spec(e, spec, path)` records every problem under `path` (`spec` for a Pod,
`spec.template.spec` for a template) so users see exactly which container or volume is wrong.
"""

from __future__ import annotations

import re
from typing import Any

from nbkube.api import naming
from nbkube.api.fieldcheck import Errors, is_int, join
from nbkube.api.validate_common import (
    check_int_or_name_port,
    check_ip,
    check_labels,
    check_name,
    check_port,
    check_protocol,
    check_quantity_map,
    quantity_of,
)
from nbkube.api.validate_dns import check_dns_config

RESTART_POLICIES = ("Always", "OnFailure", "Never")
DNS_POLICIES = ("ClusterFirst", "ClusterFirstWithHostNet", "Default", "None")
PULL_POLICIES = ("Always", "IfNotPresent", "Never")
TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")
TOLERATION_OPERATORS = ("Exists", "Equal")
PROBE_HANDLERS = ("exec", "httpGet", "tcpSocket", "grpc")
ENV_SOURCES = ("fieldRef", "resourceFieldRef", "configMapKeyRef", "secretKeyRef")
# The pod fields the downward API exposes, as upstream lists them: an environment variable may name
# these (and one label or annotation by key); a downwardAPI volume file the metadata ones and the
# whole label or annotation map.
ENV_FIELD_PATHS = (
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
    "spec.nodeName",
    "spec.serviceAccountName",
    "status.hostIP",
    "status.hostIPs",
    "status.podIP",
    "status.podIPs",
)
VOLUME_FIELD_PATHS = (
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
    "metadata.labels",
    "metadata.annotations",
)
_SUBSCRIPTED = re.compile(r"(metadata\.(?:labels|annotations))\['(.*)'\]")
SECCOMP_TYPES = ("RuntimeDefault", "Localhost", "Unconfined")
APPARMOR_TYPES = ("RuntimeDefault", "Localhost", "Unconfined")
PROC_MOUNT_TYPES = ("Default", "Unmasked")
_IPC_SYSCTLS = ("kernel.shm", "kernel.msg", "kernel.sem", "fs.mqueue.")
MAX_ID = 2147483647  # runAsUser / runAsGroup / fsGroup: what Kubernetes accepts (int32 range, >= 0)
# Linux capabilities as Kubernetes names them (no CAP_ prefix), plus ALL for drop/add of every one
CAPABILITIES = frozenset(
    [
        "ALL",
        "AUDIT_CONTROL",
        "AUDIT_READ",
        "AUDIT_WRITE",
        "BLOCK_SUSPEND",
        "BPF",
        "CHECKPOINT_RESTORE",
        "CHOWN",
        "DAC_OVERRIDE",
        "DAC_READ_SEARCH",
        "FOWNER",
        "FSETID",
        "IPC_LOCK",
        "IPC_OWNER",
        "KILL",
        "LEASE",
        "LINUX_IMMUTABLE",
        "MAC_ADMIN",
        "MAC_OVERRIDE",
        "MKNOD",
        "NET_ADMIN",
        "NET_BIND_SERVICE",
        "NET_BROADCAST",
        "NET_RAW",
        "PERFMON",
        "SETFCAP",
        "SETGID",
        "SETPCAP",
        "SETUID",
        "SYSLOG",
        "SYS_ADMIN",
        "SYS_BOOT",
        "SYS_CHROOT",
        "SYS_MODULE",
        "SYS_NICE",
        "SYS_PACCT",
        "SYS_PTRACE",
        "SYS_RAWIO",
        "SYS_RESOURCE",
        "SYS_TIME",
        "SYS_TTY_CONFIG",
        "WAKE_ALARM",
    ]
)


def check_pod_spec(
    e: Errors, spec: dict[str, Any], path: str, *, template: bool = False, claims: frozenset[str] = frozenset()
) -> None:
    """`claims`: volume names a StatefulSet's volumeClaimTemplates add to each pod it makes."""
    volumes = _check_volumes(e, spec, path) | claims
    names: set[str] = set()
    for key in ("initContainers", "containers"):
        for cp, c in e.maps(spec, key, path, required=key == "containers"):
            _check_container(e, c, cp, volumes, names, probes=key == "containers")
    if template:
        policy = spec.get("restartPolicy")
        if policy is not None and policy != "Always":
            e.unsupported(join(path, "restartPolicy"), policy, ["Always"])
    else:
        e.one_of(spec, "restartPolicy", path, RESTART_POLICIES)
    e.one_of(spec, "dnsPolicy", path, DNS_POLICIES)
    check_dns_config(e, spec, path)
    e.integer(spec, "terminationGracePeriodSeconds", path, minimum=0)
    e.integer(spec, "activeDeadlineSeconds", path, minimum=1)
    e.int32(spec, "priority", path)
    check_labels(e, spec, "nodeSelector", path)
    for key, check in (
        ("nodeName", naming.check_dns1123_subdomain),
        ("serviceAccountName", naming.check_dns1123_subdomain),
        ("hostname", naming.check_dns1123_label),
        ("subdomain", naming.check_dns1123_label),
    ):
        value = e.string(spec, key, path)
        if value:
            check_name(e, join(path, key), value, check)
    e.optional_strings(spec, ("schedulerName", "priorityClassName", "runtimeClassName"), path)
    for key in ("hostNetwork", "hostPID", "hostIPC", "enableServiceLinks", "automountServiceAccountToken"):
        e.boolean(spec, key, path)
    for key in ("affinity", "dnsConfig"):
        e.mapping(spec, key, path)
    _check_pod_security_context(e, spec, path)
    for tp, t in e.maps(spec, "tolerations", path):
        check_toleration(e, t, tp)


def check_toleration(e: Errors, t: dict[str, Any], path: str) -> None:
    key = e.string(t, "key", path)
    if key:
        e.extend_messages(join(path, "key"), key, naming.check_qualified_name(key))
    op = e.one_of(t, "operator", path, TOLERATION_OPERATORS) or "Equal"
    value = e.string(t, "value", path)
    if not key and op != "Exists":
        e.invalid(
            join(path, "operator"),
            op,
            'operator must be Exists when `key` is empty, which means "match all values and all keys"',
        )
    if op == "Exists" and value:
        e.invalid(join(path, "operator"), op, "value must be empty when `operator` is 'Exists'")
    elif value:
        e.extend_messages(join(path, "value"), value, naming.check_label_value(value))
    effect = e.one_of(t, "effect", path, TAINT_EFFECTS)
    seconds = e.integer(t, "tolerationSeconds", path)
    if seconds is not None and effect != "NoExecute":
        e.invalid(
            join(path, "effect"), effect or "", "effect must be 'NoExecute' when `tolerationSeconds` is set"
        )


def _check_volumes(e: Errors, spec: dict[str, Any], path: str) -> set[str]:
    names: set[str] = set()
    for vp, v in e.maps(spec, "volumes", path):
        name = e.string(v, "name", vp, required=True)
        if name:
            if check_name(e, join(vp, "name"), name, naming.check_dns1123_label) and name in names:
                e.duplicate(join(vp, "name"), name)
            names.add(name)
        sources = [k for k in v if k != "name"]
        if not sources:
            e.add(vp, "must specify a volume type")
        elif len(sources) > 1:
            e.forbidden(vp, f"may not specify more than 1 volume type (found {', '.join(sources)})")
        for source in sources:
            body = e.mapping(v, source, vp, required=False)
            if body is not None:
                _check_volume_source(e, source, body, join(vp, source))
    return names


def _check_volume_source(e: Errors, source: str, body: dict[str, Any], path: str) -> None:
    if source == "emptyDir":
        e.one_of(body, "medium", path, ("", "Memory"))
        if body.get("sizeLimit") is not None:
            quantity_of(e, join(path, "sizeLimit"), body["sizeLimit"])
    elif source == "hostPath":
        e.string(body, "path", path, required=True)
    elif source == "configMap":
        e.string(body, "name", path, required=True)
    elif source == "secret":
        e.string(body, "secretName", path, required=True)
    elif source == "persistentVolumeClaim":
        e.string(body, "claimName", path, required=True)
    elif source == "downwardAPI":
        for ip, item in e.maps(body, "items", path):
            e.string(item, "path", ip, required=True)
            ref = e.mapping(item, "fieldRef", ip)
            if ref is not None:
                check_field_ref(e, ref, join(ip, "fieldRef"), VOLUME_FIELD_PATHS)
            e.int32(item, "mode", ip, minimum=0, maximum=0o777)
    if source in ("configMap", "secret", "downwardAPI"):
        e.int32(body, "defaultMode", path, minimum=0, maximum=0o777)
    if source in ("configMap", "secret"):
        for ip, item in e.maps(body, "items", path):
            e.string(item, "key", ip, required=True)
            e.string(item, "path", ip, required=True)


def check_field_ref(e: Errors, ref: dict[str, Any], path: str, supported: tuple[str, ...]) -> None:
    """A downward API `fieldRef`: a path from `supported`, or one label or annotation by key."""
    version = e.string(ref, "apiVersion", path)
    if version and version != "v1":
        e.unsupported(join(path, "apiVersion"), version, ["v1"])
    field_path = e.string(ref, "fieldPath", path, required=True)
    if not field_path:
        return
    fp = join(path, "fieldPath")
    m = _SUBSCRIPTED.fullmatch(field_path)
    if m is not None:
        e.extend_messages(fp, field_path, naming.check_qualified_name(m.group(2)))
    elif field_path not in supported:
        subscripted = ("metadata.annotations['<KEY>']", "metadata.labels['<KEY>']")
        e.unsupported(fp, field_path, sorted(set(supported) | set(subscripted)))


def _check_container(
    e: Errors, c: dict[str, Any], path: str, volumes: set[str], names: set[str], *, probes: bool
) -> None:
    name = e.string(c, "name", path, required=True)
    if name and check_name(e, join(path, "name"), name, naming.check_dns1123_label):
        if name in names:
            e.duplicate(join(path, "name"), name)
        names.add(name)
    image = e.string(c, "image", path, required=True)
    if image is not None and image != image.strip():
        e.invalid(join(path, "image"), image, "must not have leading or trailing whitespace")
    e.one_of(c, "imagePullPolicy", path, PULL_POLICIES)
    e.strings(c, "command", path)
    e.strings(c, "args", path)
    e.string(c, "workingDir", path)
    e.one_of(c, "terminationMessagePolicy", path, ("File", "FallbackToLogsOnError"))
    e.string(c, "terminationMessagePath", path)
    for key in ("stdin", "tty"):
        e.boolean(c, key, path)
    _check_container_security_context(e, c, path)
    e.mapping(c, "lifecycle", path)
    _check_container_ports(e, c, path)
    _check_env(e, c, path)
    _check_resources(e, c, path)
    _check_mounts(e, c, path, volumes)
    for key in ("livenessProbe", "readinessProbe", "startupProbe"):
        if c.get(key) is None:
            continue
        if not probes:
            e.forbidden(join(path, key), "may not be set for init containers")
            continue
        probe = e.mapping(c, key, path)
        if probe is not None:
            _check_probe(e, probe, join(path, key), single_success=key != "readinessProbe")


def _check_identity(e: Errors, sc: dict[str, Any], path: str) -> None:
    """The fields a pod's and a container's securityContext share."""
    for key in ("runAsUser", "runAsGroup"):
        e.integer(sc, key, path, minimum=0, maximum=MAX_ID)
    e.boolean(sc, "runAsNonRoot", path)
    for key, types in (("seccompProfile", SECCOMP_TYPES), ("appArmorProfile", APPARMOR_TYPES)):
        profile = e.mapping(sc, key, path)
        if profile is None:
            continue
        pp = join(path, key)
        kind = e.one_of(profile, "type", pp, types, required=True)
        local = e.string(profile, "localhostProfile", pp)
        if kind == "Localhost" and not local:
            e.required(join(pp, "localhostProfile"))
        elif kind and kind != "Localhost" and local:
            e.forbidden(join(pp, "localhostProfile"), "can only be set if the type is Localhost")
    se = e.mapping(sc, "seLinuxOptions", path)
    if se is not None:
        for key in ("user", "role", "type", "level"):
            e.string(se, key, join(path, "seLinuxOptions"))
    win = e.mapping(sc, "windowsOptions", path)
    if win is not None:
        wp = join(path, "windowsOptions")
        e.boolean(win, "hostProcess", wp)
        e.optional_strings(win, ("gmsaCredentialSpecName", "gmsaCredentialSpec", "runAsUserName"), wp)


def _check_pod_security_context(e: Errors, spec: dict[str, Any], path: str) -> None:
    sc = e.mapping(spec, "securityContext", path)
    if sc is None:
        return
    sp = join(path, "securityContext")
    _check_identity(e, sc, sp)
    e.integer(sc, "fsGroup", sp, minimum=0, maximum=MAX_ID)
    e.one_of(sc, "fsGroupChangePolicy", sp, ("OnRootMismatch", "Always"))
    items = e.sequence(sc, "supplementalGroups", sp) or []
    for i, gid in enumerate(items):
        if not is_int(gid) or not 0 <= gid <= MAX_ID:
            e.invalid(
                join(join(sp, "supplementalGroups"), i), gid, f"must be an integer between 0 and {MAX_ID}"
            )
    names: set[str] = set()
    for kp, sysctl in e.maps(sc, "sysctls", sp):
        name = e.string(sysctl, "name", kp, required=True)
        e.string(sysctl, "value", kp, required=True)
        if name:
            if name in names:
                e.duplicate(join(kp, "name"), name)
            names.add(name)
            # as Kubernetes: a namespaced sysctl of a host namespace the pod shares would change the host's
            if spec.get("hostNetwork") is True and name.startswith("net."):
                e.invalid(join(kp, "name"), name, "may not be specified when 'hostNetwork' is true")
            if spec.get("hostIPC") is True and name.startswith(_IPC_SYSCTLS):
                e.invalid(join(kp, "name"), name, "may not be specified when 'hostIPC' is true")


def _check_container_security_context(e: Errors, c: dict[str, Any], path: str) -> None:
    sc = e.mapping(c, "securityContext", path)
    if sc is None:
        return
    sp = join(path, "securityContext")
    _check_identity(e, sc, sp)
    privileged = e.boolean(sc, "privileged", sp)
    escalation = e.boolean(sc, "allowPrivilegeEscalation", sp)
    e.boolean(sc, "readOnlyRootFilesystem", sp)
    e.one_of(sc, "procMount", sp, PROC_MOUNT_TYPES)
    if privileged and escalation is False:
        e.invalid(
            join(sp, "allowPrivilegeEscalation"),
            False,
            "cannot set `allowPrivilegeEscalation` to false and `privileged` to true",
        )
    caps = e.mapping(sc, "capabilities", sp)
    if caps is None:
        return
    cp = join(sp, "capabilities")
    for key in ("add", "drop"):
        for i, name in enumerate(e.strings(caps, key, cp)):
            where = join(join(cp, key), i)
            if name.startswith("CAP_") and name[4:] in CAPABILITIES:
                e.invalid(where, name, f'capability names are written without the CAP_ prefix ("{name[4:]}")')
            elif name not in CAPABILITIES:
                e.invalid(where, name, "must be a Linux capability name (such as NET_BIND_SERVICE) or ALL")


def _check_container_ports(e: Errors, c: dict[str, Any], path: str) -> None:
    port_names: set[str] = set()
    for pp, port in e.maps(c, "ports", path):
        check_port(e, port, "containerPort", pp, required=True)
        host_port = e.int32(port, "hostPort", pp)
        if host_port:
            check_port(e, port, "hostPort", pp)
        check_protocol(e, port, pp)
        check_ip(e, port, "hostIP", pp)
        pname = e.string(port, "name", pp)
        if pname and e.extend_messages(join(pp, "name"), pname, naming.check_iana_svc_name(pname)):
            if pname in port_names:
                e.duplicate(join(pp, "name"), pname)
            port_names.add(pname)


def _check_env(e: Errors, c: dict[str, Any], path: str) -> None:
    for ep, env in e.maps(c, "env", path):
        name = e.string(env, "name", ep, required=True)
        if name:
            e.extend_messages(join(ep, "name"), name, naming.check_env_var_name(name))
        value = env.get("value")
        if value is not None and not isinstance(value, str):
            e.wrong_type(join(ep, "value"), "a string (quote numbers and booleans)", value)
        source = e.mapping(env, "valueFrom", ep)
        if source is not None:
            sp = join(ep, "valueFrom")
            kinds = [k for k in ENV_SOURCES if source.get(k) is not None]
            if len(kinds) != 1:
                e.invalid(sp, "", f"must specify exactly one of: {', '.join(f'`{k}`' for k in ENV_SOURCES)}")
            if value:
                e.invalid(join(ep, "valueFrom"), "", "may not be specified when `value` is not empty")
            for k in ("configMapKeyRef", "secretKeyRef"):
                ref = e.mapping(source, k, sp)
                if ref is not None:
                    e.string(ref, "key", join(sp, k), required=True)
            ref = e.mapping(source, "fieldRef", sp)
            if ref is not None:
                check_field_ref(e, ref, join(sp, "fieldRef"), ENV_FIELD_PATHS)
    for fp, item in e.maps(c, "envFrom", path):
        refs = [k for k in ("configMapRef", "secretRef") if item.get(k) is not None]
        if len(refs) != 1:
            e.invalid(fp, "", "must specify exactly one of: `configMapRef` or `secretRef`")
        e.string(item, "prefix", fp)


def _check_resources(e: Errors, c: dict[str, Any], path: str) -> None:
    res = e.mapping(c, "resources", path)
    if res is None:
        return
    rp = join(path, "resources")
    limits = check_quantity_map(e, res, "limits", rp)
    requests = check_quantity_map(e, res, "requests", rp)
    for name, amount in requests.items():
        limit = limits.get(name)
        if limit is not None and amount > limit:
            e.invalid(
                f"{rp}.requests[{name}]",
                res["requests"][name],
                f"must be less than or equal to {name} limit of {res['limits'][name]}",
            )


def _check_mounts(e: Errors, c: dict[str, Any], path: str, volumes: set[str]) -> None:
    mount_paths: set[str] = set()
    for mp, m in e.maps(c, "volumeMounts", path):
        name = e.string(m, "name", mp, required=True)
        if name and name not in volumes:
            e.add(join(mp, "name"), f'Not found: "{name}" (no volume of that name in the pod\'s volumes)')
        mount_path = e.string(m, "mountPath", mp, required=True)
        if mount_path:
            if mount_path in mount_paths:
                e.invalid(join(mp, "mountPath"), mount_path, "must be unique")
            mount_paths.add(mount_path)
        sub = e.string(m, "subPath", mp)
        if sub and (sub.startswith("/") or ".." in sub.split("/")):
            e.invalid(join(mp, "subPath"), sub, "must be a relative path without '..'")
        e.boolean(m, "readOnly", mp)


def _check_probe(e: Errors, probe: dict[str, Any], path: str, *, single_success: bool) -> None:
    handlers = [k for k in PROBE_HANDLERS if probe.get(k) is not None]
    if not handlers:
        e.add(path, "must specify a handler type (exec, httpGet, tcpSocket or grpc)")
    elif len(handlers) > 1:
        e.forbidden(path, f"may not specify more than 1 handler type (found {', '.join(handlers)})")
    exec_ = e.mapping(probe, "exec", path)
    if exec_ is not None:
        e.strings(exec_, "command", join(path, "exec"))
    http = e.mapping(probe, "httpGet", path)
    if http is not None:
        hp = join(path, "httpGet")
        check_int_or_name_port(e, http, "port", hp, required=True)
        e.string(http, "path", hp)
        e.one_of(http, "scheme", hp, ("HTTP", "HTTPS"))
    tcp = e.mapping(probe, "tcpSocket", path)
    if tcp is not None:
        check_int_or_name_port(e, tcp, "port", join(path, "tcpSocket"), required=True)
    grpc = e.mapping(probe, "grpc", path)
    if grpc is not None:
        check_port(e, grpc, "port", join(path, "grpc"), required=True)
    for key in (
        "initialDelaySeconds",
        "timeoutSeconds",
        "periodSeconds",
        "successThreshold",
        "failureThreshold",
    ):
        e.int32(probe, key, path, minimum=0)
    e.integer(probe, "terminationGracePeriodSeconds", path, minimum=1)
    success = probe.get("successThreshold")
    if single_success and success not in (None, 1):
        e.invalid(join(path, "successThreshold"), success, "must be 1")
