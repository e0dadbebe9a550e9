"""ControllerRevisions: the template history the DaemonSet and StatefulSet controllers keep.

Both keep each pod template they have run as a ControllerRevision they own, whose `data` is the
strategic merge patch that restores the template (`{"spec": {"template": {..., "$patch":
"replace"}}}`, what `kubectl rollout undo` applies) and whose `revision` numbers them, and both
prune the oldest beyond `revisionHistoryLimit`. They differ in how a revision is named and which
revisions must be kept, which stays in each controller.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

from nbkube.api.meta import Obj, controller_of
from nbkube.controlplane.controllers.replication import owner_ref
from nbkube.errors import NotFound

if TYPE_CHECKING:
    from nbkube.client.informer import Informer
    from nbkube.registry.registry import Registry

__all__ = ["owned_revisions", "restore_patch", "revision_object", "prune_revisions", "template_of"]


def owned_revisions(revisions: Informer, owner: Obj) -> list[Obj]:
    """The ControllerRevisions `owner` controls, from the informer's namespace index."""
    meta = owner.get("metadata") or {}
    ns = str(meta.get("namespace") or "default")
    return [r for r in revisions.by_index("namespace", ns) if (controller_of(r) or {}).get("uid") == meta.get("uid")]


def restore_patch(template: Obj) -> dict[str, Any]:
    """What a ControllerRevision of `template` holds: the patch that puts the template back."""
    return {"spec": {"template": {**copy.deepcopy(template), "$patch": "replace"}}}


def template_of(revision: Obj) -> Obj:
    """The pod template a ControllerRevision restores (the inverse of `restore_patch`)."""
    found = copy.deepcopy(((revision.get("data") or {}).get("spec") or {}).get("template") or {})
    found.pop("$patch", None)
    return dict(found)


def revision_object(owner: Obj, name: str, labels: dict[str, str], template: Obj, number: int) -> Obj:
    """A new ControllerRevision `name` of `owner` for `template`, numbered `number`."""
    return {
        "apiVersion": "apps/v1",
        "kind": "ControllerRevision",
        "metadata": {
            "name": name,
            "namespace": (owner.get("metadata") or {}).get("namespace") or "default",
            "labels": labels,
            "ownerReferences": [owner_ref(owner)],
        },
        "data": restore_patch(template),
        "revision": number,
    }


def prune_revisions(api: Registry, old: list[Obj], limit: int) -> None:
    """Delete the oldest (lowest `revision`) of `old`, the revisions that may go, beyond `limit`."""
    by_number = sorted(old, key=lambda r: int(r.get("revision") or 0))
    for r in by_number[: max(0, len(by_number) - limit)]:
        meta = r.get("metadata") or {}
        try:
            api.delete("ControllerRevision", str(meta.get("name")), str(meta.get("namespace") or "default"))
        except NotFound:
            continue
