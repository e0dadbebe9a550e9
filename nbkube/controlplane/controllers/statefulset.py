"""The StatefulSet controller: pods with stable names, hostnames and storage, made in order.

A StatefulSet of N replicas owns pods `NAME-0 .. NAME-(N-1)` (from `spec.ordinals.start`). Each
pod gets `spec.hostname` = its name and `spec.subdomain` = the set's `serviceName`, so its DNS
name is `NAME-i.SERVICE.NS.svc.cluster.local`, and one claim per volumeClaimTemplate,
`TEMPLATE-NAME-i`, made before the pod; the claims outlive the pods unless
`persistentVolumeClaimRetentionPolicy` says Delete (then owner references let the garbage
collector remove them with the set, or with a scaled-down pod).

One pass of `reconcile`, as upstream's `updateStatefulSet`:
1. revisions: the template is hashed into a revision (`NAME-HASH`) stored as a ControllerRevision
   owned by the set; `status.updateRevision` is the template's, `status.currentRevision` the
   one the set had before the update began. A pod's revision is its `controller-revision-hash`
   label.
2. ordinals in range, lowest first: a missing pod is created (its claims first); a Failed or
   Succeeded one is deleted to be made again. With `podManagementPolicy: OrderedReady` the pass
   stops at the first pod that is not Running and Ready: pod i+1 waits for pod i.
3. pods beyond the range, highest ordinal first: deleted; OrderedReady deletes one at a time and
   only while every other pod is Running and Ready.
4. RollingUpdate: from the highest ordinal down to `partition`, the first pod at another revision
   is deleted (it is made again at the update revision by step 2); one at a time, waiting for
   each to be Running and Ready. OnDelete does nothing: pods a user deletes come back updated.
5. status: replicas, readyReplicas, availableReplicas, currentReplicas, updatedReplicas, the two
   revisions and observedGeneration; when every pod is at the update revision and ready, the
   update revision becomes the current one.

A set whose `serviceName` Service does not exist gets a Warning event (`FailedServiceLookup`),
once per set until the Service appears: its pods still start, without a resolvable name.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from typing import TYPE_CHECKING, Any

from nbkube.api.meta import Obj, controller_of, key_of, split_key
from nbkube.api.meta import meta_of as _meta
from nbkube.api.meta import spec_of as _spec
from nbkube.client.controller import Controller
from nbkube.clock import REAL_CLOCK, Clock
from nbkube.controlplane.controllers.history import (
    owned_revisions,
    prune_revisions,
    revision_object,
    template_of,
)
from nbkube.controlplane.controllers.replication import (
    adopt_claimed,
    claim_pods,
    delete_pod,
    is_active,
    is_available,
    is_ready,
    owner_ref,
    owner_selector,
    pod_from_template,
    seconds_until_available,
)
from nbkube.controlplane.controllers.writes import controller_key, event, write_status
from nbkube.errors import AlreadyExists, Conflict, NbkubeError, NotFound

if TYPE_CHECKING:
    from nbkube.client.informer import Informer, InformerFactory
    from nbkube.registry.registry import Registry

__all__ = [
    "POD_NAME_LABEL",
    "POD_INDEX_LABEL",
    "REVISION_LABEL",
    "StatefulSetController",
    "claim_name",
    "ordinal_of",
    "pod_for_ordinal",
    "revision_name",
]

POD_NAME_LABEL = "statefulset.kubernetes.io/pod-name"
POD_INDEX_LABEL = "apps.kubernetes.io/pod-index"
REVISION_LABEL = "controller-revision-hash"
COMPONENT = "statefulset-controller"


# --- pure helpers -------------------------------------------------------------------------------


def ordinal_of(sts_name: str, pod_name: str) -> int | None:
    """The ordinal in `NAME-ORDINAL`, None for a name of another shape."""
    m = re.fullmatch(re.escape(sts_name) + r"-(0|[1-9][0-9]*)", pod_name)
    return int(m.group(1)) if m else None


def claim_name(template: str, sts_name: str, ordinal: int) -> str:
    return f"{template}-{sts_name}-{ordinal}"


def _start(sts: Obj) -> int:
    ordinals = _spec(sts).get("ordinals") or {}
    return int(ordinals.get("start") or 0)


def _replicas(sts: Obj) -> int:
    value = _spec(sts).get("replicas", 1)
    return 1 if value is None else int(value)


def _partition(sts: Obj) -> int:
    strategy = _spec(sts).get("updateStrategy") or {}
    if strategy.get("type", "RollingUpdate") != "RollingUpdate":
        return 0
    return int((strategy.get("rollingUpdate") or {}).get("partition") or 0)


def _ordered(sts: Obj) -> bool:
    return _spec(sts).get("podManagementPolicy", "OrderedReady") != "Parallel"


def revision_name(sts: Obj, template: Obj) -> str:
    """`NAME-HASH`: a stable name for a template (the same template always gives the same name)."""
    data = json.dumps(template, sort_keys=True, separators=(",", ":")).encode()
    return f"{_meta(sts).get('name')}-{hashlib.sha256(data).hexdigest()[:10]}"


def pod_for_ordinal(sts: Obj, template: Obj, revision: str, ordinal: int) -> Obj:
    """The pod of `ordinal` made from `template` (a pod template) at `revision`."""
    meta = _meta(sts)
    name = f"{meta.get('name')}-{ordinal}"
    labels = {POD_NAME_LABEL: name, POD_INDEX_LABEL: str(ordinal), REVISION_LABEL: revision}
    pod = pod_from_template(sts, template, labels=labels, name=name)
    spec = pod["spec"]
    spec["hostname"] = name
    service = _spec(sts).get("serviceName")
    if service:
        spec["subdomain"] = service
    claims = [c for c in _spec(sts).get("volumeClaimTemplates") or [] if isinstance(c, dict)]
    if claims:
        names = {str(_meta(c).get("name")) for c in claims}
        volumes = [v for v in spec.get("volumes") or [] if v.get("name") not in names]
        for c in claims:
            cname = str(_meta(c).get("name"))
            volumes.append(
                {
                    "name": cname,
                    "persistentVolumeClaim": {"claimName": claim_name(cname, str(meta.get("name")), ordinal)},
                }
            )
        spec["volumes"] = volumes
    return pod


def _claim_for(sts: Obj, template: Obj, ordinal: int) -> Obj:
    meta = _meta(sts)
    tmeta = _meta(template)
    labels = dict(tmeta.get("labels") or {})
    labels.update((_spec(sts).get("selector") or {}).get("matchLabels") or {})
    claim_meta: dict[str, Any] = {
        "name": claim_name(str(tmeta.get("name")), str(meta.get("name")), ordinal),
        "namespace": meta.get("namespace") or "default",
        "labels": labels,
    }
    if tmeta.get("annotations"):
        claim_meta["annotations"] = dict(tmeta["annotations"])
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": claim_meta,
        "spec": copy.deepcopy(template.get("spec") or {}),
    }


def _revision_of(pod: Obj) -> str:
    return str((_meta(pod).get("labels") or {}).get(REVISION_LABEL, ""))


def _healthy(pod: Obj) -> bool:
    """Running and Ready and not being deleted: what OrderedReady waits for."""
    return (
        (pod.get("status") or {}).get("phase") == "Running"
        and is_ready(pod)
        and not _meta(pod).get("deletionTimestamp")
    )


def _finished(pod: Obj) -> bool:
    return (pod.get("status") or {}).get("phase") in ("Failed", "Succeeded")


# --- the controller -------------------------------------------------------------------------------


class StatefulSetController(Controller):
    """Runs StatefulSets: ordered pods with stable identity and per-pod claims."""

    name = "statefulset"

    def __init__(
        self, api: Registry, factory: InformerFactory, *, clock: Clock = REAL_CLOCK, workers: int = 1
    ):
        super().__init__(api, factory, clock=clock, workers=workers)
        self.sets: Informer = factory.informer("StatefulSet")
        self.pods: Informer = factory.informer("Pod")
        self.services: Informer = factory.informer("Service")
        self.claims: Informer = factory.informer("PersistentVolumeClaim")
        self.claims.add_handler(on_update=lambda old, new: self._claim_changed(new))
        self.revisions: Informer = factory.informer("ControllerRevision")
        self._warned: set[str] = set()  # uids of sets told their Service is missing
        self.sets.add_handler(
            on_add=self.enqueue, on_update=lambda old, new: self.enqueue(new), on_delete=self.enqueue
        )
        self.pods.add_handler(
            on_add=self._pod_event,
            on_update=lambda old, new: self._pod_event(new),
            on_delete=self._pod_event,
        )
        self.services.add_handler(on_add=self._service_event, on_delete=self._service_event)

    def _pod_event(self, pod: Obj) -> None:
        key = controller_key(pod, "StatefulSet")
        if key is not None:
            self.queue.add(key)

    def _claim_changed(self, claim: Obj) -> None:
        # a set's claims carry its selector's labels; a changed claim may need its owners fixed
        ns = _meta(claim).get("namespace") or "default"
        labels = _meta(claim).get("labels") or {}
        for sts in self.sets.by_index("namespace", ns):
            match = (_spec(sts).get("selector") or {}).get("matchLabels") or {}
            if match and all(labels.get(k) == v for k, v in match.items()):
                self.enqueue(sts)

    def _service_event(self, svc: Obj) -> None:
        ns = _meta(svc).get("namespace") or "default"
        for sts in self.sets.by_index("namespace", ns):
            if _spec(sts).get("serviceName") == _meta(svc).get("name"):
                self.enqueue(sts)

    # -- reconcile ------------------------------------------------------------------------------

    def reconcile(self, key: str) -> None:
        sts = self.sets.get(key)
        if sts is None or _meta(sts).get("deletionTimestamp"):
            return  # its pods are the garbage collector's; its claims are retained
        ns, name = split_key(key)
        self._check_service(sts, ns)
        template = _spec(sts).get("template") or {}
        update_rev = revision_name(sts, template)
        status = sts.get("status") or {}
        current_rev = str(status.get("currentRevision") or update_rev)
        self._ensure_revision(sts, update_rev, template)
        current_template = self._template_of(current_rev) if current_rev != update_rev else template
        uid = _meta(sts).get("uid")
        pods: dict[int, Obj] = {}
        condemned: list[tuple[int, Obj]] = []
        start, replicas = _start(sts), _replicas(sts)
        members = [
            p
            for p in self.pods.by_index("namespace", ns or "default")
            if ordinal_of(name, str(_meta(p).get("name"))) is not None
        ]
        claim = claim_pods(sts, members, owner_selector(sts))
        # an orphan NAME-i (its set deleted with --cascade=orphan) is ours again
        owned = claim.owned + adopt_claimed(self.api, claim, owner_ref(sts))[0]
        for pod in owned:
            ordinal = ordinal_of(name, str(_meta(pod).get("name")))
            if ordinal is None or (controller_of(pod) or {}).get("uid") != uid:
                continue
            if start <= ordinal < start + replicas:
                pods[ordinal] = pod
            else:
                condemned.append((ordinal, pod))
        try:
            self._manage(sts, pods, condemned, current_rev, update_rev, current_template, template)
        finally:
            self._sync_status(sts, pods, condemned, current_rev, update_rev)

    def _manage(
        self,
        sts: Obj,
        pods: dict[int, Obj],
        condemned: list[tuple[int, Obj]],
        current_rev: str,
        update_rev: str,
        current_template: Obj,
        template: Obj,
    ) -> None:
        ordered = _ordered(sts)
        start, replicas = _start(sts), _replicas(sts)
        partition = _partition(sts)
        self._claim_owners(sts, pods, condemned)
        # 2. the ordinals in range, lowest first
        for ordinal in range(start, start + replicas):
            pod = pods.get(ordinal)
            if pod is None:
                at_current = ordinal < partition and current_rev != update_rev
                made = self._create(
                    sts,
                    current_template if at_current else template,
                    current_rev if at_current else update_rev,
                    ordinal,
                )
                pods[ordinal] = made
                if ordered:
                    return  # the next ordinal waits for this one to be Running and Ready
                continue
            if _finished(pod):
                self._delete(sts, pod, "failed or finished: it is made again")
                if ordered:
                    return
                continue
            if ordered and not _healthy(pod):
                return
        # 3. ordinals beyond the range, highest first
        for _ordinal, pod in sorted(condemned, key=lambda item: -item[0]):
            if _meta(pod).get("deletionTimestamp"):
                if ordered:
                    return
                continue
            if ordered and not all(_healthy(p) for p in pods.values()):
                return
            self._delete(sts, pod, "scale down")
            if ordered:
                return
        # 4. rolling update, highest ordinal first, down to the partition
        if (_spec(sts).get("updateStrategy") or {}).get("type", "RollingUpdate") != "RollingUpdate":
            return
        for ordinal in range(start + replicas - 1, max(start, partition) - 1, -1):
            pod = pods.get(ordinal)
            if pod is None:
                return
            if _revision_of(pod) != update_rev and not _meta(pod).get("deletionTimestamp"):
                self._delete(sts, pod, f"update to revision {update_rev}")
                return
            if not _healthy(pod):
                return

    # -- claim retention ---------------------------------------------------------------------------

    def _claim_owners(self, sts: Obj, pods: dict[int, Obj], condemned: list[tuple[int, Obj]]) -> None:
        """persistentVolumeClaimRetentionPolicy, as upstream, through owner references the garbage
        collector follows: `whenDeleted: Delete` makes the set an owner of every claim it made;
        `whenScaled: Delete` makes a condemned pod the owner of its claims before it is deleted (and
        a pod back in range loses that reference). Retain (the default) leaves claims unowned."""
        policy = _spec(sts).get("persistentVolumeClaimRetentionPolicy") or {}
        when_deleted, when_scaled = policy.get("whenDeleted", "Retain"), policy.get("whenScaled", "Retain")
        templates = [c for c in _spec(sts).get("volumeClaimTemplates") or [] if isinstance(c, dict)]
        if not templates:
            return
        meta = _meta(sts)
        name, ns, uid = str(meta.get("name")), str(meta.get("namespace") or "default"), meta.get("uid")
        doomed = dict(condemned)
        for ordinal in sorted({*pods, *doomed}):
            pod = doomed.get(ordinal)
            for template in templates:
                cname = claim_name(str(_meta(template).get("name")), name, ordinal)
                claim = self.claims.get(f"{ns}/{cname}")
                if claim is None:
                    continue
                refs = [
                    r for r in _meta(claim).get("ownerReferences") or []
                    if r.get("uid") != uid and not (r.get("kind") == "Pod" and r.get("name") == f"{name}-{ordinal}")
                ]  # fmt: skip
                if when_deleted == "Delete":
                    refs.append({**owner_ref(sts), "controller": False, "blockOwnerDeletion": False})
                if when_scaled == "Delete" and pod is not None:
                    pmeta = _meta(pod)
                    refs.append({"apiVersion": "v1", "kind": "Pod", "name": pmeta.get("name"),
                                 "uid": pmeta.get("uid"), "controller": False, "blockOwnerDeletion": False})  # fmt: skip
                if refs == (_meta(claim).get("ownerReferences") or []):
                    continue
                new = copy.deepcopy(claim)
                if refs:
                    new["metadata"]["ownerReferences"] = refs
                else:
                    new["metadata"].pop("ownerReferences", None)
                try:
                    self.api.update(new)
                except (Conflict, NotFound):
                    self.queue.add_rate_limited(key_of(sts))

    # -- writes ------------------------------------------------------------------------------------

    def _create(self, sts: Obj, template: Obj, revision: str, ordinal: int) -> Obj:
        for claim_template in _spec(sts).get("volumeClaimTemplates") or []:
            claim = _claim_for(sts, claim_template, ordinal)
            cmeta = claim["metadata"]
            if self.claims.get(f"{cmeta['namespace']}/{cmeta['name']}") is not None:
                continue
            try:
                self.api.create(claim)
            except AlreadyExists:
                pass  # made by an earlier pass the cache has not shown yet; kept as it is
            except NbkubeError as exc:
                self._event(
                    sts,
                    "FailedCreate",
                    f"create Claim {cmeta['name']} for Pod {_meta(sts).get('name')}-{ordinal} failed: {exc}",
                    warning=True,
                )
                raise
            else:
                self._event(
                    sts,
                    "SuccessfulCreate",
                    f"create Claim {cmeta['name']} Pod {_meta(sts).get('name')}-{ordinal} success",
                )
        pod = pod_for_ordinal(sts, template, revision, ordinal)
        try:
            made = self.api.create(pod)
        except AlreadyExists:
            # not in the cache yet, or owned by someone else: try again later, backing off
            self.queue.add_rate_limited(key_of(sts))
            return pod
        except NbkubeError as exc:
            self._event(
                sts, "FailedCreate", f"create Pod {pod['metadata']['name']} failed: {exc}", warning=True
            )
            raise
        self._event(sts, "SuccessfulCreate", f"create Pod {pod['metadata']['name']} success")
        return made

    def _delete(self, sts: Obj, pod: Obj, why: str) -> None:
        pname = _meta(pod).get("name")
        try:
            delete_pod(self.api, pod)
        except NotFound:
            return
        self._event(sts, "SuccessfulDelete", f"delete Pod {pname} success ({why})")

    def _event(self, sts: Obj, reason: str, message: str, *, warning: bool = False) -> None:
        event(self, sts, reason, message, COMPONENT, warning=warning)

    def _check_service(self, sts: Obj, ns: str) -> None:
        service = _spec(sts).get("serviceName")
        uid = str(_meta(sts).get("uid"))
        if not service or self.services.get(f"{ns or 'default'}/{service}") is not None:
            self._warned.discard(uid)
            return
        if uid in self._warned:
            return
        self._warned.add(uid)
        self._event(
            sts,
            "FailedServiceLookup",
            f'service "{service}" not found in namespace {ns or "default"}: the pods start, but their '
            f"names ({_meta(sts).get('name')}-N.{service}.{ns or 'default'}.svc.cluster.local) resolve "
            "only once a headless Service of that name exists",
            warning=True,
        )

    # -- revisions ---------------------------------------------------------------------------------

    def _ensure_revision(self, sts: Obj, revision: str, template: Obj) -> None:
        ns = _meta(sts).get("namespace") or "default"
        if self.revisions.get(f"{ns}/{revision}") is not None:
            return
        mine = owned_revisions(self.revisions, sts)
        number = max((int(r.get("revision") or 0) for r in mine), default=0) + 1
        labels = dict((_spec(sts).get("selector") or {}).get("matchLabels") or {})
        labels[REVISION_LABEL] = revision
        try:
            self.api.create(revision_object(sts, revision, labels, template, number))
        except AlreadyExists:
            return
        keep = {revision, str((sts.get("status") or {}).get("currentRevision"))}
        limit = int(_spec(sts).get("revisionHistoryLimit", 10) or 0)
        prune_revisions(self.api, [r for r in mine if _meta(r).get("name") not in keep], limit)

    def _template_of(self, revision: str) -> Obj:
        """The pod template of an earlier revision (from its ControllerRevision)."""
        for r in self.revisions.list():
            if _meta(r).get("name") == revision:
                return template_of(r)
        raise NotFound(f"controllerrevision {revision!r} of the current pods is gone; waiting for the cache")

    # -- status ------------------------------------------------------------------------------------

    def _sync_status(
        self,
        sts: Obj,
        pods: dict[int, Obj],
        condemned: list[tuple[int, Obj]],
        current_rev: str,
        update_rev: str,
    ) -> None:
        now = self.clock.now()
        min_ready = int(_spec(sts).get("minReadySeconds") or 0)
        every = [p for p in [*pods.values(), *(p for _o, p in condemned)] if _meta(p).get("uid")]
        live = [p for p in every if is_active(p)]
        status: dict[str, Any] = dict(sts.get("status") or {})
        status["observedGeneration"] = int(_meta(sts).get("generation") or 1)
        status["replicas"] = len(live)
        status["readyReplicas"] = sum(1 for p in live if is_ready(p))
        status["availableReplicas"] = sum(1 for p in live if is_available(p, min_ready, now))
        status["updatedReplicas"] = sum(1 for p in live if _revision_of(p) == update_rev)
        status["currentReplicas"] = sum(1 for p in live if _revision_of(p) == current_rev)
        status["currentRevision"] = current_rev
        status["updateRevision"] = update_rev
        status.setdefault("collisionCount", 0)
        replicas = _replicas(sts)
        if (
            current_rev != update_rev
            and status["updatedReplicas"] == replicas
            and status["readyReplicas"] == replicas
            and len(live) == replicas
        ):
            status["currentRevision"] = update_rev
            status["currentReplicas"] = status["updatedReplicas"]
        for count in ("readyReplicas", "currentReplicas", "updatedReplicas"):
            if not status[count]:
                del status[count]  # omitted when zero, as upstream's (omitempty) fields
        waits = [w for p in live if (w := seconds_until_available(p, min_ready, now)) is not None]
        if waits:
            self.queue.add_after(key_of(sts), min(waits) + 0.001)
        write_status(self, key_of(sts), sts, status)
