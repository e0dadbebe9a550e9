"""The Service environment variables the kubelet gives every container, computed in one place.

Both runtimes (Docker and process) put these under a container's own `env` and `envFrom`, so a
program written for Kubernetes finds `WEB_SERVICE_HOST` / `WEB_SERVICE_PORT` (and the docker-links
style `WEB_PORT_8000_TCP_ADDR` ...) as it would there. The node agent reads the Services through
its informer when it starts a pod: like the kubelet, only Services that exist at that moment are
seen, a later Service does not reach a running container.

Rules (as the kubelet's): Services of the pod's own namespace when `spec.enableServiceLinks` is
not false, plus the `kubernetes` Service of `default` always; only Services with a ClusterIP
(headless and ExternalName Services get none); a pod-namespace Service wins over the `default`
one of the same name; names upper-cased with `-` turned into `_`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from nbkube.api.meta import Obj

__all__ = ["service_env", "MASTER_SERVICES"]

# always exported from the default namespace, even with enableServiceLinks: false
MASTER_SERVICES = ("kubernetes",)


def _var(name: str) -> str:
    return name.upper().replace("-", "_")


def _has_cluster_ip(svc: Obj) -> bool:
    ip = str((svc.get("spec") or {}).get("clusterIP") or "")
    return bool(ip) and ip != "None"


def _one_service(svc: Obj, host_of: Callable[[str], str] | None) -> dict[str, str]:
    spec = svc.get("spec") or {}
    name = _var(str((svc.get("metadata") or {}).get("name") or ""))
    ip = str(spec["clusterIP"])
    if host_of is not None:
        ip = host_of(ip)
    ports = [p for p in spec.get("ports") or [] if isinstance(p, dict) and p.get("port") is not None]
    env: dict[str, str] = {f"{name}_SERVICE_HOST": ip}
    if not ports:
        return env
    env[f"{name}_SERVICE_PORT"] = str(ports[0]["port"])
    for p in ports:
        if p.get("name"):
            env[f"{name}_SERVICE_PORT_{_var(str(p['name']))}"] = str(p["port"])
    first = ports[0]
    env[f"{name}_PORT"] = f"{str(first.get('protocol') or 'TCP').lower()}://{ip}:{first['port']}"
    for p in ports:
        proto = str(p.get("protocol") or "TCP")
        prefix = f"{name}_PORT_{p['port']}_{proto.upper()}"
        env[prefix] = f"{proto.lower()}://{ip}:{p['port']}"
        env[f"{prefix}_PROTO"] = proto.lower()
        env[f"{prefix}_PORT"] = str(p["port"])
        env[f"{prefix}_ADDR"] = ip
    return env


def service_env(
    pod: Obj, services: Iterable[Obj], host_of: Callable[[str], str] | None = None
) -> dict[str, str]:
    """The variables for `pod` given the Services that exist now (any namespaces; filtered here).

    `host_of` maps a ClusterIP to the address pods of this node reach it at, where that differs
    (the process runtime's loopback mirror of the service range); None: the ClusterIP itself."""
    meta = pod.get("metadata") or {}
    ns = str(meta.get("namespace") or "default")
    links = (pod.get("spec") or {}).get("enableServiceLinks") is not False
    chosen: dict[str, Obj] = {}
    masters: dict[str, Obj] = {}
    for svc in services:
        smeta = svc.get("metadata") or {}
        sns, sname = str(smeta.get("namespace") or "default"), str(smeta.get("name") or "")
        if not sname or not _has_cluster_ip(svc):
            continue
        if sns == "default" and sname in MASTER_SERVICES:
            masters[sname] = svc
        if links and sns == ns:
            chosen[sname] = svc
    for sname, svc in masters.items():
        chosen.setdefault(sname, svc)
    env: dict[str, str] = {}
    for sname in sorted(chosen):
        env.update(_one_service(chosen[sname], host_of))
    return env
