"""The Pod Security Standards checks, one pure function each, worded as upstream words them.

`evaluate(level, meta, spec)` returns the violations of a pod (or a pod template) at `baseline` or
`restricted` as (reason, detail) pairs, in the order Kubernetes' pod-security-admission reports
them: the baseline checks, then the restricted ones; at `restricted`, the restricted volume,
capability and seccomp checks replace their baseline counterparts, as upstream's do. The
admission plugin (`admission_podsecurity.py`) turns them into
`violates PodSecurity "restricted:latest": reason (detail), ...`.

Every version label (`v1.N`) is judged by the latest checks listed here: the older variants
upstream keeps for old versions (seccomp annotations, shorter sysctl lists) are not reproduced.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

__all__ = ["Violation", "evaluate", "BASELINE_CAPABILITIES", "SAFE_SYSCTLS", "RESTRICTED_VOLUMES_ALLOWED"]

Violation = tuple[str, str]  # (forbidden reason, forbidden detail)
Spec = dict[str, Any]
Check = Callable[[Spec, Spec], "Violation | None"]

# capabilities a baseline container may add (the container runtimes' default set)
BASELINE_CAPABILITIES = frozenset(
    [
        "AUDIT_WRITE",
        "CHOWN",
        "DAC_OVERRIDE",
        "FOWNER",
        "FSETID",
        "KILL",
        "MKNOD",
        "NET_BIND_SERVICE",
        "SETFCAP",
        "SETGID",
        "SETPCAP",
        "SETUID",
        "SYS_CHROOT",
    ]
)
SAFE_SYSCTLS = frozenset(
    {
        "kernel.shm_rmid_forced",
        "net.ipv4.ip_local_port_range",
        "net.ipv4.ip_unprivileged_port_start",
        "net.ipv4.tcp_syncookies",
        "net.ipv4.ping_group_range",
        "net.ipv4.ip_local_reserved_ports",
        "net.ipv4.tcp_keepalive_time",
        "net.ipv4.tcp_fin_timeout",
        "net.ipv4.tcp_keepalive_intvl",
        "net.ipv4.tcp_keepalive_probes",
        "net.ipv4.tcp_rmem",
        "net.ipv4.tcp_wmem",
    }
)
RESTRICTED_VOLUMES_ALLOWED = frozenset(
    {
        "configMap",
        "csi",
        "downwardAPI",
        "emptyDir",
        "ephemeral",
        "persistentVolumeClaim",
        "projected",
        "secret",
    }
)
SELINUX_TYPES = frozenset({"", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"})
APPARMOR_ANNOTATION = "container.apparmor.security.beta.kubernetes.io/"


# --- helpers (upstream's pluralize / joinQuote / visitContainers) ----------------------------------


def _m(parent: Any, key: str) -> dict[str, Any]:
    value = parent.get(key) if isinstance(parent, dict) else None
    return value if isinstance(value, dict) else {}


def _list(parent: Any, key: str) -> list[Any]:
    value = parent.get(key) if isinstance(parent, dict) else None
    return value if isinstance(value, list) else []


def _containers(spec: Spec) -> Iterator[dict[str, Any]]:
    for key in ("initContainers", "containers", "ephemeralContainers"):
        for c in _list(spec, key):
            if isinstance(c, dict):
                yield c


def _plural(single: str, many: str, n: int) -> str:
    return single if n == 1 else many


def _quote(items: Any) -> str:
    return ", ".join(f'"{x}"' for x in items)


def _who(names: list[str]) -> str:
    return f"{_plural('container', 'containers', len(names))} {_quote(names)}"


def _name(c: dict[str, Any]) -> str:
    return str(c.get("name", ""))


def _sc(c: dict[str, Any]) -> dict[str, Any]:
    return _m(c, "securityContext")


# --- baseline --------------------------------------------------------------------------------------


def app_armor_profile(meta: Spec, spec: Spec) -> Violation | None:
    bad: list[str] = []
    for key, value in sorted(_m(meta, "annotations").items()):
        allowed = not value or value == "runtime/default" or str(value).startswith("localhost/")
        if key.startswith(APPARMOR_ANNOTATION) and not allowed:
            bad.append(f'{key}="{value}"')
    setters = []
    if _m(_m(spec, "securityContext"), "appArmorProfile").get("type") == "Unconfined":
        setters.append("pod")
    names = [_name(c) for c in _containers(spec) if _m(_sc(c), "appArmorProfile").get("type") == "Unconfined"]
    if names:
        setters.append(_who(names))
    if setters:
        bad.append(
            f'{" and ".join(setters)} must not set securityContext.appArmorProfile.type to "Unconfined"'
        )
    if not bad:
        return None
    return _plural("forbidden AppArmor profile", "forbidden AppArmor profiles", len(bad)), ", ".join(bad)


def capabilities_baseline(meta: Spec, spec: Spec) -> Violation | None:
    names: list[str] = []
    caps: set[str] = set()
    for c in _containers(spec):
        extra = [str(x) for x in _list(_m(_sc(c), "capabilities"), "add") if x not in BASELINE_CAPABILITIES]
        if extra:
            names.append(_name(c))
            caps.update(extra)
    if not names:
        return None
    return "non-default capabilities", (
        f"{_who(names)} must not include {_quote(sorted(caps))} in securityContext.capabilities.add"
    )


def host_namespaces(meta: Spec, spec: Spec) -> Violation | None:
    bad = [f"{k}=true" for k in ("hostNetwork", "hostPID", "hostIPC") if spec.get(k) is True]
    return ("host namespaces", ", ".join(bad)) if bad else None


def host_path_volumes(meta: Spec, spec: Spec) -> Violation | None:
    names = [
        str(v.get("name", "")) for v in _list(spec, "volumes") if isinstance(v, dict) and "hostPath" in v
    ]
    if not names:
        return None
    return "hostPath volumes", f"{_plural('volume', 'volumes', len(names))} {_quote(names)}"


def host_ports(meta: Spec, spec: Spec) -> Violation | None:
    names: list[str] = []
    ports: set[str] = set()
    for c in _containers(spec):
        used = [
            str(p.get("hostPort")) for p in _list(c, "ports") if isinstance(p, dict) and p.get("hostPort")
        ]
        if used:
            names.append(_name(c))
            ports.update(used)
    if not names:
        return None
    n = len(names)
    return "hostPort", (
        f"{_who(names)} {_plural('uses', 'use', n)} {_plural('hostPort', 'hostPorts', len(ports))} "
        f"{', '.join(sorted(ports))}"
    )


def host_probes_and_lifecycle(meta: Spec, spec: Spec) -> Violation | None:
    names: list[str] = []
    hosts: set[str] = set()
    for c in _containers(spec):
        handlers = [_m(c, k) for k in ("livenessProbe", "readinessProbe", "startupProbe")]
        handlers += [_m(_m(c, "lifecycle"), k) for k in ("postStart", "preStop")]
        found = {
            str(_m(h, kind).get("host"))
            for h in handlers
            for kind in ("httpGet", "tcpSocket")
            if _m(h, kind).get("host")
        }
        if found:
            names.append(_name(c))
            hosts |= found
    if not names:
        return None
    n = len(names)
    return "probe or lifecycle host", (
        f"{_who(names)} {_plural('uses', 'use', n)} "
        f"{_plural('probe or lifecycle host', 'probe or lifecycle hosts', len(hosts))} {_quote(sorted(hosts))}"
    )


def privileged(meta: Spec, spec: Spec) -> Violation | None:
    names = [_name(c) for c in _containers(spec) if _sc(c).get("privileged") is True]
    if not names:
        return None
    return "privileged", f"{_who(names)} must not set securityContext.privileged=true"


def proc_mount(meta: Spec, spec: Spec) -> Violation | None:
    names: list[str] = []
    kinds: set[str] = set()
    for c in _containers(spec):
        value = _sc(c).get("procMount")
        if value not in (None, "", "Default"):
            names.append(_name(c))
            kinds.add(str(value))
    if not names:
        return None
    return "procMount", f"{_who(names)} must not set securityContext.procMount to {_quote(sorted(kinds))}"


def se_linux_options(meta: Spec, spec: Spec) -> Violation | None:
    bad_types: set[str] = set()
    flags = {"user": False, "role": False}

    def valid(opts: dict[str, Any]) -> bool:
        ok = True
        kind = str(opts.get("type") or "")
        if kind not in SELINUX_TYPES:
            ok = False
            bad_types.add(kind)
        for key in flags:
            if opts.get(key):
                ok = False
                flags[key] = True
        return ok

    setters: list[str] = []
    pod_opts = _m(_m(spec, "securityContext"), "seLinuxOptions")
    if pod_opts and not valid(pod_opts):
        setters.append("pod")
    names = [
        _name(c)
        for c in _containers(spec)
        if _m(_sc(c), "seLinuxOptions") and not valid(_m(_sc(c), "seLinuxOptions"))
    ]
    if names:
        setters.append(_who(names))
    if not setters:
        return None
    data = []
    if bad_types:
        data.append(f"{_plural('type', 'types', len(bad_types))} {_quote(sorted(bad_types))}")
    data += [f"{key} may not be set" for key, was in flags.items() if was]
    return (
        "seLinuxOptions",
        f"{' and '.join(setters)} set forbidden securityContext.seLinuxOptions: {'; '.join(data)}",
    )


def _seccomp_ok(profile: dict[str, Any]) -> bool:
    return profile.get("type") in ("RuntimeDefault", "Localhost")


def seccomp_profile_baseline(meta: Spec, spec: Spec) -> Violation | None:
    return _seccomp(spec, require=False)


def seccomp_profile_restricted(meta: Spec, spec: Spec) -> Violation | None:
    return _seccomp(spec, require=True)


def _seccomp(spec: Spec, *, require: bool) -> Violation | None:
    setters: list[str] = []
    bad_values: set[str] = set()
    pod_set = False
    pod_profile = _m(_m(spec, "securityContext"), "seccompProfile")
    if pod_profile:
        if _seccomp_ok(pod_profile):
            pod_set = True
        else:
            setters.append("pod")
            bad_values.add(str(pod_profile.get("type")))
    explicit: list[str] = []
    implicit: list[str] = []
    for c in _containers(spec):
        profile = _m(_sc(c), "seccompProfile")
        if profile:
            if not _seccomp_ok(profile):
                explicit.append(_name(c))
                bad_values.add(str(profile.get("type")))
        elif not pod_set:
            implicit.append(_name(c))
    if explicit:
        setters.append(_who(explicit))
    if setters:
        return "seccompProfile", (
            f"{' and '.join(setters)} must not set securityContext.seccompProfile.type to {_quote(sorted(bad_values))}"
        )
    if require and implicit:
        return "seccompProfile", (
            f'pod or {_who(implicit)} must set securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost"'
        )
    return None


def sysctls(meta: Spec, spec: Spec) -> Violation | None:
    bad = [
        str(s.get("name"))
        for s in _list(_m(spec, "securityContext"), "sysctls")
        if isinstance(s, dict) and s.get("name") not in SAFE_SYSCTLS
    ]
    return ("forbidden sysctls", ", ".join(bad)) if bad else None


def windows_host_process(meta: Spec, spec: Spec) -> Violation | None:
    setters: list[str] = []
    if _m(_m(spec, "securityContext"), "windowsOptions").get("hostProcess") is True:
        setters.append("pod")
    names = [_name(c) for c in _containers(spec) if _m(_sc(c), "windowsOptions").get("hostProcess") is True]
    if names:
        setters.append(_who(names))
    if not setters:
        return None
    return (
        "hostProcess",
        f"{' and '.join(setters)} must not set securityContext.windowsOptions.hostProcess=true",
    )


# --- restricted ------------------------------------------------------------------------------------


def allow_privilege_escalation(meta: Spec, spec: Spec) -> Violation | None:
    names = [_name(c) for c in _containers(spec) if _sc(c).get("allowPrivilegeEscalation") is not False]
    if not names:
        return None
    return "allowPrivilegeEscalation != false", (
        f"{_who(names)} must set securityContext.allowPrivilegeEscalation=false"
    )


def capabilities_restricted(meta: Spec, spec: Spec) -> Violation | None:
    missing_drop: list[str] = []
    adding: list[str] = []
    caps: set[str] = set()
    for c in _containers(spec):
        capabilities = _m(_sc(c), "capabilities")
        if "ALL" not in _list(capabilities, "drop"):
            missing_drop.append(_name(c))
        extra = [str(x) for x in _list(capabilities, "add") if x != "NET_BIND_SERVICE"]
        if extra:
            adding.append(_name(c))
            caps.update(extra)
    details = []
    if missing_drop:
        details.append(f'{_who(missing_drop)} must set securityContext.capabilities.drop=["ALL"]')
    if adding:
        details.append(
            f"{_who(adding)} must not include {_quote(sorted(caps))} in securityContext.capabilities.add"
        )
    return ("unrestricted capabilities", "; ".join(details)) if details else None


def restricted_volumes(meta: Spec, spec: Spec) -> Violation | None:
    names: list[str] = []
    kinds: set[str] = set()
    for v in _list(spec, "volumes"):
        if not isinstance(v, dict):
            continue
        sources = [k for k in v if k != "name"] or ["emptyDir"]
        if sources[0] not in RESTRICTED_VOLUMES_ALLOWED:
            names.append(str(v.get("name", "")))
            kinds.add(sources[0])
    if not names:
        return None
    n = len(names)
    return "restricted volume types", (
        f"{_plural('volume', 'volumes', n)} {_quote(names)} {_plural('uses', 'use', n)} "
        f"{_plural('restricted volume type', 'restricted volume types', len(kinds))} {_quote(sorted(kinds))}"
    )


def run_as_non_root(meta: Spec, spec: Spec) -> Violation | None:
    setters: list[str] = []
    pod_value = _m(spec, "securityContext").get("runAsNonRoot")
    if pod_value is False:
        setters.append("pod")
    explicit: list[str] = []
    implicit: list[str] = []
    for c in _containers(spec):
        value = _sc(c).get("runAsNonRoot")
        if value is False:
            explicit.append(_name(c))
        elif value is None and pod_value is not True:
            implicit.append(_name(c))
    if explicit:
        setters.append(_who(explicit))
    if setters:
        return (
            "runAsNonRoot != true",
            f"{' and '.join(setters)} must not set securityContext.runAsNonRoot=false",
        )
    if implicit:
        return "runAsNonRoot != true", f"pod or {_who(implicit)} must set securityContext.runAsNonRoot=true"
    return None


def run_as_user(meta: Spec, spec: Spec) -> Violation | None:
    setters: list[str] = []
    if _m(spec, "securityContext").get("runAsUser") == 0:
        setters.append("pod")
    names = [_name(c) for c in _containers(spec) if _sc(c).get("runAsUser") == 0]
    if names:
        setters.append(_who(names))
    if not setters:
        return None
    return "runAsUser=0", f"{' and '.join(setters)} must not set runAsUser=0"


# upstream's order (its check files, by name); restricted replaces the overlapping baseline checks
_BASELINE: list[Check] = [
    app_armor_profile,
    capabilities_baseline,
    host_namespaces,
    host_path_volumes,
    host_ports,
    host_probes_and_lifecycle,
    privileged,
    proc_mount,
    se_linux_options,
    seccomp_profile_baseline,
    sysctls,
    windows_host_process,
]
_OVERRIDDEN = {capabilities_baseline, host_path_volumes, seccomp_profile_baseline}
_RESTRICTED: list[Check] = [
    allow_privilege_escalation,
    capabilities_restricted,
    restricted_volumes,
    run_as_non_root,
    run_as_user,
    seccomp_profile_restricted,
]


def evaluate(level: str, meta: Spec, spec: Spec) -> list[Violation]:
    """The violations of (`meta`, `spec`) at `level` (none at `privileged`)."""
    if level == "baseline":
        checks = _BASELINE
    elif level == "restricted":
        checks = [c for c in _BASELINE if c not in _OVERRIDDEN] + _RESTRICTED
    else:
        return []
    out = []
    for check in checks:
        found = check(meta if isinstance(meta, dict) else {}, spec if isinstance(spec, dict) else {})
        if found is not None:
            out.append(found)
    return out
