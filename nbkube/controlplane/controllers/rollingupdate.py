"""The article's rolling update: a second ReplicationController takes over one pod at a time.

This is the client-side driver the old `kubectl rolling-update` was (the Deployment controller
later moved the idea server-side): `nbkube rolling-update RC --image IMAGE` (or `-f new-rc.yaml`)
calls `rolling_update()`, which only reads and writes through the registry; the replication
controllers of a running control plane create and delete the pods.

How it goes, as kubectl did it:
1. both RCs get a `deployment` label key (hash of their pod template) in their selectors, so they
   never select each other's pods; the old RC's live pods are relabelled first, then its selector;
2. the new RC (`<old>-<hash>`, or the name in the file) is created with 0 replicas, remembering the
   desired count and its source in annotations;
3. then, in turn: grow the new RC while the pod total stays <= desired + maxSurge; shrink the old RC
   while ready pods stay >= desired - maxUnavailable (pods a scale-down has not yet removed still
   count towards the total, and only pods that will stay count as ready); wait `update_period`
   between steps; each step is an Event "RollingUpdate" and a progress line;
4. the old RC is deleted; with `--image` the new RC then takes the old name (delete it orphaning its
   pods, create the old name with the same spec, which adopts them).

Every decision is taken from what exists in the store, so an interrupted run continues where it
stopped when run again with the same arguments.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

from nbkube.api.meta import Obj
from nbkube.api.selectors import selector_from_map
from nbkube.client.events import record_event
from nbkube.clock import REAL_CLOCK, Clock
from nbkube.controlplane.controllers.deployment import template_hash
from nbkube.controlplane.controllers.replication import is_active, is_available
from nbkube.errors import AlreadyExists, BadRequest, Conflict, NbkubeError, NotFound

if TYPE_CHECKING:
    from nbkube.registry.registry import Registry

__all__ = ["rolling_update", "RollingUpdateTimeout", "DEPLOYMENT_KEY", "plan_step"]

DEPLOYMENT_KEY = "deployment"
DESIRED = "kubectl.kubernetes.io/desired-replicas"
SOURCE = "kubectl.kubernetes.io/update-source-id"
COMPONENT = "rolling-update"

Progress = Callable[[str], None]


class RollingUpdateTimeout(NbkubeError):
    """The rollout made no progress to completion within the timeout (it can be resumed)."""


def _without_key(template: Obj) -> Obj:
    t = copy.deepcopy(template or {})
    labels = (t.get("metadata") or {}).get("labels")
    if isinstance(labels, dict):
        labels.pop(DEPLOYMENT_KEY, None)
    return t


def plan_step(
    desired: int,
    max_surge: int,
    max_unavailable: int,
    old: tuple[int, int, int],
    new: tuple[int, int, int],
) -> tuple[str, int] | None:
    """The next move, from (spec replicas, live pods, ready pods) of the old and new RC.

    Returns ("up", new replicas for the new RC), ("down", new replicas for the old RC) or None
    (wait). Pure, so the bounds are tested without a cluster."""
    old_spec, old_pods, old_ready = old
    new_spec, new_pods, new_ready = new
    total = max(old_spec, old_pods) + max(new_spec, new_pods)
    if new_spec < desired and total < desired + max_surge:
        return "up", new_spec + min(desired + max_surge - total, desired - new_spec)
    if old_spec > 0:
        ready = min(old_spec, old_ready) + min(new_spec, new_ready)
        decrement = min(old_spec, ready - (desired - max_unavailable))
        if new_spec >= desired and min(new_spec, new_ready) >= desired:
            decrement = old_spec  # the new RC alone is enough
        if decrement > 0:
            return "down", old_spec - decrement
    return None


class _Driver:
    def __init__(
        self,
        api: Registry,
        namespace: str,
        max_unavailable: int,
        max_surge: int,
        update_period: float,
        timeout: float,
        clock: Clock,
        progress: Progress | None,
        poll_interval: float,
    ):
        self.api = api
        self.ns = namespace
        self.max_unavailable = max_unavailable
        self.max_surge = max_surge
        self.update_period = update_period
        self.clock = clock
        self.progress = progress
        self.poll = poll_interval
        self.deadline = clock.monotonic() + timeout
        self.timeout = timeout

    def say(self, rc: Obj, message: str) -> None:
        record_event(self.api, rc, "RollingUpdate", message, component=COMPONENT, clock=self.clock)
        if self.progress is not None:
            self.progress(message)

    def check_time(self, what: str) -> None:
        if self.clock.monotonic() > self.deadline:
            raise RollingUpdateTimeout(
                f"rolling update timed out after {self.timeout:g}s {what}; run the same command again to continue"
            )

    def counts(self, rc: Obj) -> tuple[int, int, int]:
        """(spec replicas, live pods, ready-and-available pods) of an RC, read from the registry."""
        spec = rc.get("spec") or {}
        pods, _ = self.api.list("Pod", self.ns, label_selector=selector_from_map(spec.get("selector") or {}))
        live = [p for p in pods if is_active(p)]
        min_ready = int(spec.get("minReadySeconds") or 0)
        now = self.clock.now()
        return (
            int(spec.get("replicas", 1) or 0),
            len(live),
            sum(1 for p in live if is_available(p, min_ready, now)),
        )

    def scale(self, rc: Obj, replicas: int) -> Obj:
        return self.api.patch(
            "ReplicationController", rc["metadata"]["name"], self.ns, {"spec": {"replicas": replicas}}
        )

    def add_key(self, old: Obj, value: str) -> Obj:
        """Give the old RC (template, live pods, then selector) the deployment key, as kubectl did:
        in this order no pod ever stops matching its RC, and none matches the new one."""
        name = old["metadata"]["name"]
        if (old["spec"].get("selector") or {}).get(DEPLOYMENT_KEY):
            return old
        tlabels = ((old["spec"].get("template") or {}).get("metadata") or {}).get("labels") or {}
        if tlabels.get(DEPLOYMENT_KEY) != value:
            old = self.api.patch(
                "ReplicationController",
                name,
                self.ns,
                {"spec": {"template": {"metadata": {"labels": {DEPLOYMENT_KEY: value}}}}},
            )
        pods, _ = self.api.list("Pod", self.ns, label_selector=selector_from_map(old["spec"]["selector"]))
        for pod in pods:
            if (pod["metadata"].get("labels") or {}).get(DEPLOYMENT_KEY) == value:
                continue
            try:
                self.api.patch(
                    "Pod", pod["metadata"]["name"], self.ns, {"metadata": {"labels": {DEPLOYMENT_KEY: value}}}
                )
            except NotFound:
                continue
        return self.api.patch(
            "ReplicationController", name, self.ns, {"spec": {"selector": {DEPLOYMENT_KEY: value}}}
        )


def _new_rc_from_image(old: Obj, image: str, container: str | None) -> Obj:
    template = _without_key(old["spec"].get("template") or {})
    containers = (template.get("spec") or {}).get("containers") or []
    if container:
        targets = [c for c in containers if c.get("name") == container]
        if not targets:
            names = ", ".join(str(c.get("name")) for c in containers)
            raise BadRequest(f'container "{container}" not found in the pod template (has: {names})')
    elif len(containers) == 1:
        targets = containers
    else:
        raise BadRequest("the pod template has several containers: name one with --container")
    if targets[0].get("image") == image:
        raise BadRequest(f"--image {image} is the image the RC already runs: nothing to update")
    targets[0]["image"] = image
    targets[0].pop("imagePullPolicy", None)  # re-defaulted for the new tag
    return {
        "apiVersion": "v1",
        "kind": "ReplicationController",
        "metadata": {"namespace": old["metadata"].get("namespace", "default")},
        "spec": {
            "replicas": 0,
            "selector": {k: v for k, v in (old["spec"].get("selector") or {}).items() if k != DEPLOYMENT_KEY},
            "template": template,
            **(
                {"minReadySeconds": old["spec"]["minReadySeconds"]}
                if old["spec"].get("minReadySeconds")
                else {}
            ),
        },
    }


def _find_resumable(api: Registry, rc_name: str, namespace: str) -> Obj | None:
    items, _ = api.list("ReplicationController", namespace)
    for rc in items:
        source = ((rc["metadata"].get("annotations")) or {}).get(SOURCE, "")
        if source.split(":", 1)[0] == rc_name:
            return rc
    return None


def rolling_update(
    api: Registry,
    rc_name: str,
    namespace: str = "default",
    *,
    image: str | None = None,
    new_rc: Obj | None = None,
    container: str | None = None,
    max_unavailable: int = 0,
    max_surge: int = 1,
    update_period: float = 1.0,
    timeout: float = 300.0,
    poll_interval: float = 0.05,
    clock: Clock = REAL_CLOCK,
    progress: Progress | None = None,
) -> Obj:
    """Replace RC `rc_name` by a new one (new `image`, or the `new_rc` manifest), pod by pod.

    Returns the RC left running. Raises BadRequest for bad input (before any write),
    RollingUpdateTimeout when the rollout did not finish in time (rerun to continue)."""
    if (image is None) == (new_rc is None):
        raise BadRequest("rolling-update needs exactly one of --image IMAGE or -f FILE")
    if max_unavailable < 0 or max_surge < 0:
        raise BadRequest("--max-unavailable and --max-surge must be >= 0")
    if max_unavailable == 0 and max_surge == 0:
        raise BadRequest("--max-unavailable and --max-surge cannot both be 0: no pod could ever move")
    drv = _Driver(
        api, namespace, max_unavailable, max_surge, update_period, timeout, clock, progress, poll_interval
    )

    try:
        old: Obj | None = api.get("ReplicationController", rc_name, namespace)
    except NotFound:
        old = None
    keep_old_name = new_rc is None

    if old is None:
        # interrupted after the old RC was deleted: only the rename may be left to do
        new = _find_resumable(api, rc_name, namespace)
        if new is None:
            raise NotFound(f'replicationcontrollers "{rc_name}" not found')
        if keep_old_name and new["metadata"]["name"] != rc_name:
            return _rename(drv, new, rc_name)
        return new

    if new_rc is not None:
        spec = copy.deepcopy(new_rc)
        if spec.get("kind") != "ReplicationController":
            raise BadRequest(f"-f must hold a ReplicationController, not {spec.get('kind')!r}")
        meta = spec.setdefault("metadata", {})
        if not meta.get("name"):
            raise BadRequest("the new ReplicationController needs metadata.name")
        if meta["name"] == rc_name:
            raise BadRequest(f'the new ReplicationController must have a name other than "{rc_name}"')
        if meta.get("namespace", namespace) != namespace:
            raise BadRequest(f'the new ReplicationController must be in namespace "{namespace}"')
        meta["namespace"] = namespace
        spec.setdefault("spec", {})
        if not spec["spec"].get("selector"):
            labels = ((spec["spec"].get("template") or {}).get("metadata") or {}).get("labels") or {}
            spec["spec"]["selector"] = {k: v for k, v in labels.items() if k != DEPLOYMENT_KEY}
    else:
        assert image is not None
        spec = _new_rc_from_image(old, image, container)

    new_template = _without_key(spec["spec"].get("template") or {})
    old_template = _without_key(old["spec"].get("template") or {})
    new_hash = template_hash(new_template)
    old_hash = ((old["spec"].get("selector")) or {}).get(DEPLOYMENT_KEY) or template_hash(old_template)
    if new_hash == old_hash:
        raise BadRequest("the new pod template is the same as the old one: nothing to update")
    if keep_old_name:
        spec["metadata"]["name"] = f"{rc_name}-{new_hash}"
    new_name = spec["metadata"]["name"]

    try:
        new = api.get("ReplicationController", new_name, namespace)
        source = ((new["metadata"].get("annotations")) or {}).get(SOURCE, "")
        if source.split(":", 1)[0] != rc_name:
            raise BadRequest(
                f'replicationcontrollers "{new_name}" exists and is not an update of "{rc_name}"'
            )
        desired = int(new["metadata"]["annotations"].get(DESIRED, old["spec"].get("replicas", 1)))
        drv.say(new, f"Continuing update of {rc_name} to {new_name}")
    except NotFound:
        desired = int(old["spec"].get("replicas", 1) or 0)
        old = drv.add_key(old, old_hash)
        spec["spec"]["replicas"] = 0
        spec["spec"]["selector"] = {**spec["spec"]["selector"], DEPLOYMENT_KEY: new_hash}
        tmeta = spec["spec"].setdefault("template", {}).setdefault("metadata", {})
        tmeta["labels"] = {**(tmeta.get("labels") or {}), DEPLOYMENT_KEY: new_hash}
        ann = spec["metadata"].setdefault("annotations", {})
        ann[DESIRED] = str(desired)
        ann[SOURCE] = f"{rc_name}:{old['metadata'].get('uid', '')}"
        spec["metadata"].pop("resourceVersion", None)
        try:
            new = api.create(spec)
        except AlreadyExists:
            new = api.get("ReplicationController", new_name, namespace)
        drv.say(
            new, f"Created {new_name}; scaling up {new_name} from 0 to {desired}, scaling down {rc_name} to 0"
        )

    # the stepping loop: bounded by the timeout, and each pass either acts or waits one poll
    assert old is not None
    while True:
        old = api.get("ReplicationController", rc_name, namespace)
        new = api.get("ReplicationController", new_name, namespace)
        oc, nc = drv.counts(old), drv.counts(new)
        if oc[0] == 0 and oc[1] == 0 and nc[0] == desired:
            break
        step = plan_step(desired, max_surge, max_unavailable, oc, nc)
        if step is None:
            drv.check_time(
                f"waiting for pods ({rc_name}: {oc[2]}/{oc[0]} ready, {new_name}: {nc[2]}/{nc[0]} ready)"
            )
            clock.sleep(poll_interval)
            continue
        direction, n = step
        if direction == "up":
            new = drv.scale(new, n)
            o_n, n_n = oc[0], n
            what = f"Scaled up {new_name} to {n}"
        else:
            old = drv.scale(old, n)
            o_n, n_n = n, nc[0]
            what = f"Scaled down {rc_name} to {n}"
        drv.say(
            new,
            f"{what} (old {rc_name}={o_n}, new {new_name}={n_n}, ready={min(oc[0], oc[2]) + min(nc[0], nc[2])})",
        )
        drv.check_time("between steps")
        if update_period > 0:
            clock.sleep(update_period)

    _delete_rc(api, rc_name, namespace, "Background")
    drv.say(new, f"Update succeeded. Deleted old controller: {rc_name}")
    if keep_old_name:
        return _rename(drv, new, rc_name)
    return new


def _delete_rc(
    api: Registry, name: str, namespace: str, propagation: Literal["Background", "Orphan"]
) -> None:
    """Delete an RC whatever its resourceVersion (its controller keeps writing status)."""
    for attempt in range(5):
        try:
            api.delete("ReplicationController", name, namespace, propagation=propagation)
            return
        except NotFound:
            return
        except Conflict:
            if attempt == 4:
                raise


def _rename(drv: _Driver, new: Obj, target: str) -> Obj:
    """Give the new RC the old name: delete it orphaning its pods, create `target` with its spec
    (which adopts them). Resumable: run again, it finds the RC by its source annotation."""
    api, ns = drv.api, drv.ns
    renamed: Obj = {
        "apiVersion": "v1",
        "kind": "ReplicationController",
        "metadata": {
            "name": target,
            "namespace": ns,
            "labels": dict(new["metadata"].get("labels") or {}),
        },
        "spec": copy.deepcopy(new["spec"]),
    }
    annotations: dict[str, Any] = {
        k: v for k, v in ((new["metadata"].get("annotations")) or {}).items() if k not in (DESIRED, SOURCE)
    }
    if annotations:
        renamed["metadata"]["annotations"] = annotations
    _delete_rc(api, new["metadata"]["name"], ns, "Orphan")
    # the released pods must look orphaned to the controller before the new name claims them
    if drv.update_period > 0:
        drv.clock.sleep(drv.update_period)
    try:
        out = api.create(renamed)
    except AlreadyExists:
        out = api.get("ReplicationController", target, ns)
    drv.say(out, f"Renamed {new['metadata']['name']} to {target}")
    return out
