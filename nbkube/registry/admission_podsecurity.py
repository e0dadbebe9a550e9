"""Pod Security admission: the Pod Security Standards per namespace, as Kubernetes' built-in plugin.

A namespace chooses, per mode, a level with the labels `pod-security.kubernetes.io/enforce`,
`.../warn` and `.../audit` (`privileged`, `baseline` or `restricted`; `...-version`: `latest` or
`v1.N`, see `nbkube.api.podsecurity`); what it leaves out comes from the cluster's defaults
(`PodSecurityConfig`, upstream's AdmissionConfiguration: privileged everywhere unless told
otherwise; `LocalCluster(pod_security="baseline")`, `nbkube up --pod-security baseline`).

- enforce: a Pod that violates the level is refused, Forbidden (403) with upstream's wording,
  `pods "x" is forbidden: violates PodSecurity "restricted:latest": allowPrivilegeEscalation !=
  false (container "c" must set securityContext.allowPrivilegeEscalation=false), ...`;
- warn: the request goes through with a warning, `would violate PodSecurity "...": ...`, handed to
  `nbkube.registry.warnings.warn` (the API server sends it as a `Warning` header);
- audit: one log line on the `nbkube.audit.podsecurity` logger.

Pod templates of ReplicationControllers, ReplicaSets and Deployments are judged too, but (as
upstream) only ever warned about, for the enforce and the warn level: the pods their controllers
create are what enforce refuses (the controller then records a FailedCreate event). Pod updates
are judged again only when they change an image, the one mutable part of a pod spec, as
upstream's "significant update" test. A namespace whose enforce label changes is told which of
its existing pods violate the new level (a warning, nothing is evicted). Namespaces in
`exempt_namespaces` (by default `kube-system`, as upstream's exemptions allow) are not judged.

The checks themselves are `podsecurity_checks.evaluate`. Namespace labels are read from the store
(one read per judged object, cached for NAMESPACE_CACHE_SECONDS; a label change made through this
registry is seen at once). Invalid labels cannot be written (Namespace validation refuses them);
if an older store holds one anyway, that mode falls back to `restricted:latest`, as upstream does.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from nbkube.api.meta import Obj
from nbkube.api.podsecurity import (
    LEVELS,
    MODES,
    LevelVersion,
    label_for,
    parse_level,
    parse_version,
    version_label_for,
)
from nbkube.errors import BadRequest, Forbidden, NotFound
from nbkube.registry.podsecurity_checks import Violation, evaluate
from nbkube.registry.warnings import warn

if TYPE_CHECKING:
    from nbkube.registry.admission import Operation
    from nbkube.registry.registry import Registry

__all__ = ["PodSecurityAdmission", "PodSecurityConfig", "parse_pod_security", "violation_text"]

log = logging.getLogger(__name__)
audit_log = logging.getLogger("nbkube.audit.podsecurity")

TEMPLATE_KINDS = frozenset({"ReplicationController", "ReplicaSet", "Deployment", "DaemonSet", "StatefulSet"})
NAMESPACE_CACHE_SECONDS = 1.0
SECCOMP_POD_ANNOTATION = "seccomp.security.alpha.kubernetes.io/pod"
SECCOMP_CONTAINER_PREFIX = "container.seccomp.security.alpha.kubernetes.io/"
MAX_POD_WARNINGS = 10  # distinct violation sets named when a namespace's enforce level changes

_PRIVILEGED = LevelVersion("privileged")
_FAIL_CLOSED = LevelVersion("restricted")


@dataclass(frozen=True)
class PodSecurityConfig:
    """The cluster-wide defaults per mode and the exempt namespaces (upstream's plugin config)."""

    enforce: LevelVersion = _PRIVILEGED
    warn: LevelVersion = _PRIVILEGED
    audit: LevelVersion = _PRIVILEGED
    exempt_namespaces: frozenset[str] = field(default_factory=lambda: frozenset({"kube-system"}))

    def level(self, mode: str) -> LevelVersion:
        value: LevelVersion = getattr(self, mode)
        return value


def _level_version(text: str, where: str) -> LevelVersion:
    level, _, version = text.strip().partition(":")
    if parse_level(level) is None:
        raise BadRequest(f"{where}: level must be one of {', '.join(LEVELS)}, got {level!r}")
    version = version or "latest"
    if parse_version(version) is None:
        raise BadRequest(f'{where}: version must be "latest" or "v1.x", got {version!r}')
    return LevelVersion(level, version)


def parse_pod_security(
    value: str | Mapping[str, str] | PodSecurityConfig | None,
    *,
    exempt_namespaces: Iterable[str] | None = None,
) -> PodSecurityConfig:
    """A PodSecurityConfig from what a user writes.

    None: upstream's defaults (privileged for every mode). "baseline" (or "baseline:v1.30"): that
    enforce level. "enforce=baseline,warn=restricted,audit=restricted", or the same as a mapping:
    each mode given. `exempt_namespaces` replaces the default exemption of kube-system."""
    if isinstance(value, PodSecurityConfig):
        config = value
    elif value is None or value == "":
        config = PodSecurityConfig()
    else:
        if isinstance(value, str):
            parts = [p.strip() for p in value.split(",") if p.strip()]
            if len(parts) == 1 and "=" not in parts[0]:
                parts = [f"enforce={parts[0]}"]
            pairs: dict[str, str] = {}
            for part in parts:
                mode, eq, level = part.partition("=")
                if not eq:
                    raise BadRequest(f"pod security: {part!r} must be MODE=LEVEL (modes: {', '.join(MODES)})")
                pairs[mode.strip()] = level
        elif isinstance(value, Mapping):
            pairs = {str(k): str(v) for k, v in value.items()}
        else:
            raise BadRequest(
                f"pod security: expected a level or MODE=LEVEL pairs, got {type(value).__name__}"
            )
        levels: dict[str, LevelVersion] = {}
        for mode, level in pairs.items():
            if mode not in MODES:
                raise BadRequest(f"pod security: mode must be one of {', '.join(MODES)}, got {mode!r}")
            levels[mode] = _level_version(level, f"pod security {mode}")
        config = PodSecurityConfig(**levels)  # type: ignore[arg-type]
    if exempt_namespaces is not None:
        config = replace(config, exempt_namespaces=frozenset(exempt_namespaces))
    return config


def violation_text(violations: list[Violation]) -> str:
    """`reason (detail), reason (detail)`: how upstream joins its check results."""
    return ", ".join(f"{reason} ({detail})" if detail else reason for reason, detail in violations)


def _labels(obj: Obj | None) -> dict[str, Any]:
    labels = ((obj or {}).get("metadata") or {}).get("labels")
    return labels if isinstance(labels, dict) else {}


def namespace_levels(labels: Mapping[str, Any], config: PodSecurityConfig) -> dict[str, LevelVersion]:
    """The level per mode for a namespace with `labels` (its labels over the cluster defaults)."""
    out: dict[str, LevelVersion] = {}
    for mode in MODES:
        default = config.level(mode)
        raw_level = labels.get(label_for(mode))
        raw_version = labels.get(version_label_for(mode))
        level = default.level if raw_level is None else parse_level(raw_level)
        version = default.version if raw_version is None else parse_version(raw_version)
        out[mode] = _FAIL_CLOSED if level is None or version is None else LevelVersion(level, version)
    return out


def _images(spec: Any) -> list[list[Any]]:
    spec = spec if isinstance(spec, dict) else {}
    return [
        [c.get("image") if isinstance(c, dict) else None for c in (spec.get(k) or [])]
        for k in ("initContainers", "containers", "ephemeralContainers")
    ]


def _seccomp_annotations(obj: Obj) -> dict[str, Any]:
    annotations = (obj.get("metadata") or {}).get("annotations") or {}
    return {
        k: v
        for k, v in annotations.items()
        if k == SECCOMP_POD_ANNOTATION or str(k).startswith(SECCOMP_CONTAINER_PREFIX)
    }


def significant_pod_update(new: Obj, old: Obj) -> bool:
    """Whether a pod update can change what Pod Security judged (upstream's test): an image, the
    number of containers or the seccomp annotations; bindings and status never do."""
    new_spec, old_spec = new.get("spec") or {}, old.get("spec") or {}
    if _seccomp_annotations(new) != _seccomp_annotations(old):
        return True
    return _images(new_spec) != _images(old_spec)


class PodSecurityAdmission:
    """Admission plugin: Pod Security Standards on Pods, pod templates and Namespaces."""

    mutates: frozenset[str] = frozenset()  # it refuses or warns, never changes (see admission.py)

    def __init__(
        self,
        config: PodSecurityConfig | str | Mapping[str, str] | None = None,
        *,
        exempt_namespaces: Iterable[str] | None = None,
        clock: Any = time.monotonic,
    ) -> None:
        self.config = parse_pod_security(config, exempt_namespaces=exempt_namespaces)
        self._clock = clock
        self._cache: dict[str, tuple[float, dict[str, Any]]] = {}
        self._lock = threading.Lock()

    # -- the plugin --------------------------------------------------------------------------------

    def admit(self, op: Operation, obj: Obj, old: Obj | None, registry: Registry) -> None:
        if op == "DELETE":
            return
        kind = obj.get("kind")
        if kind == "Namespace":
            self._forget(str((obj.get("metadata") or {}).get("name") or ""))
            if op == "UPDATE" and old is not None:
                self._namespace_update(obj, old, registry)
            return
        if kind != "Pod" and kind not in TEMPLATE_KINDS:
            return
        namespace = str((obj.get("metadata") or {}).get("namespace") or "default")
        if namespace in self.config.exempt_namespaces:
            return
        if kind == "Pod":
            if op == "UPDATE" and old is not None and not significant_pod_update(obj, old):
                return
            self._judge_pod(obj, namespace, registry)
        else:
            template = (obj.get("spec") or {}).get("template") or {}
            if (
                op == "UPDATE"
                and old is not None
                and template == ((old.get("spec") or {}).get("template") or {})
            ):
                return  # a scale or a status-like change: the pods it makes are judged as before
            self._judge_template(obj, template, namespace, registry)

    def committed(self, op: Operation, obj: Obj, old: Obj | None, registry: Registry) -> None:
        if obj.get("kind") == "Namespace":
            self._forget(str((obj.get("metadata") or {}).get("name") or ""))

    # -- judging -----------------------------------------------------------------------------------

    def levels_for(self, namespace: str, registry: Registry) -> dict[str, LevelVersion]:
        """The level per mode that applies in `namespace` now."""
        return namespace_levels(self._namespace_labels(namespace, registry), self.config)

    def _judge_pod(self, pod: Obj, namespace: str, registry: Registry) -> None:
        levels = self.levels_for(namespace, registry)
        meta = pod.get("metadata") or {}
        spec = pod.get("spec") or {}
        name = str(meta.get("name") or meta.get("generateName") or "")
        found = self._evaluate(levels, meta, spec)
        if found["audit"]:
            audit_log.warning(
                'pods "%s" in namespace "%s" would violate PodSecurity "%s": %s',
                name,
                namespace,
                levels["audit"],
                violation_text(found["audit"]),
            )
        if found["warn"]:
            warn(f'would violate PodSecurity "{levels["warn"]}": {violation_text(found["warn"])}')
        if found["enforce"]:
            raise Forbidden(
                f'pods "{name}" is forbidden: violates PodSecurity "{levels["enforce"]}": '
                f"{violation_text(found['enforce'])}"
            )

    def _judge_template(self, obj: Obj, template: Obj, namespace: str, registry: Registry) -> None:
        levels = self.levels_for(namespace, registry)
        meta = template.get("metadata") or {}
        spec = template.get("spec") or {}
        found = self._evaluate(levels, meta, spec)
        for mode in ("enforce", "warn"):  # upstream warns about a template for both
            if found[mode]:
                warn(f'would violate PodSecurity "{levels[mode]}": {violation_text(found[mode])}')
        if found["audit"]:
            audit_log.warning(
                '%s "%s" in namespace "%s" would violate PodSecurity "%s": %s',
                obj.get("kind"),
                (obj.get("metadata") or {}).get("name"),
                namespace,
                levels["audit"],
                violation_text(found["audit"]),
            )

    @staticmethod
    def _evaluate(levels: dict[str, LevelVersion], meta: Obj, spec: Obj) -> dict[str, list[Violation]]:
        by_level: dict[str, list[Violation]] = {}
        out: dict[str, list[Violation]] = {}
        for mode, lv in levels.items():
            if lv.level not in by_level:
                by_level[lv.level] = evaluate(lv.level, meta, spec)
            out[mode] = by_level[lv.level]
        return out

    def _namespace_update(self, new: Obj, old: Obj, registry: Registry) -> None:
        """Name the existing pods that violate a namespace's new enforce level (upstream warns)."""
        name = str((new.get("metadata") or {}).get("name") or "")
        if name in self.config.exempt_namespaces:
            return
        before = namespace_levels(_labels(old), self.config)["enforce"]
        after = namespace_levels(_labels(new), self.config)["enforce"]
        if after == before or after.privileged:
            return
        pods, _rv = registry.list("Pod", name)
        groups: dict[str, list[str]] = {}
        for pod in pods:
            found = evaluate(after.level, pod.get("metadata") or {}, pod.get("spec") or {})
            if found:
                reasons = ", ".join(sorted({reason for reason, _detail in found}))
                groups.setdefault(reasons, []).append(str(pod["metadata"].get("name", "")))
        if not groups:
            return
        warn(f'existing pods in namespace "{name}" violate the new PodSecurity enforce level "{after}"')
        for reasons, names in sorted(groups.items(), key=lambda kv: sorted(kv[1])[0])[:MAX_POD_WARNINGS]:
            names.sort()
            others = len(names) - 1
            who = names[0] + (f" (and {others} other pod{'s' if others > 1 else ''})" if others else "")
            warn(f"{who}: {reasons}")

    # -- namespace labels --------------------------------------------------------------------------

    def _namespace_labels(self, namespace: str, registry: Registry) -> dict[str, Any]:
        now = self._clock()
        with self._lock:
            hit = self._cache.get(namespace)
        if hit is not None and hit[0] > now:
            return hit[1]
        try:
            labels = _labels(registry.get("Namespace", namespace))
        except NotFound:
            labels = {}  # an auto-created namespace not written yet: the cluster defaults hold
        with self._lock:
            self._cache[namespace] = (now + NAMESPACE_CACHE_SECONDS, labels)
        return labels

    def _forget(self, namespace: str) -> None:
        with self._lock:
            self._cache.pop(namespace, None)
