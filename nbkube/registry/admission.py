"""The admission seam: plugins the registry runs on every create, update and delete.

Kubernetes lets a chain of admission controllers mutate or refuse a request after it is validated
and before it is written. nbkube keeps the same shape so that quota, LimitRange defaults and
ClusterIP/NodePort allocation (the control-plane helper's `admission_*.py` modules) can be plugged
into a `Registry` without the registry knowing about any of them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal, Protocol

from nbkube.api.meta import Obj

if TYPE_CHECKING:
    from nbkube.registry.registry import Registry

Operation = Literal["CREATE", "UPDATE", "DELETE"]

# Optional hooks a plugin may also define (looked up with getattr, so plain `admit`-only plugins
# still fit): `rollback(op, obj, old, registry)` runs when a later plugin refused or the write
# itself failed after this plugin admitted `obj` (release what admit allocated or charged);
# `committed(op, obj, old, registry)` runs after the write succeeded (e.g. release a deleted
# Service's ClusterIP only once the delete has really happened). Hook errors are logged, not raised.
#
# And an optional attribute, `mutates: frozenset[str]`: the kinds whose objects `admit` may change.
# The registry copies an object before admission and validates it again when a plugin changed it;
# for a kind no plugin mutates it skips both. A plugin without the attribute may change any kind.


class AdmissionPlugin(Protocol):
    def admit(self, op: Operation, obj: Obj, old: Obj | None, registry: Registry) -> None:
        """Inspect (and for CREATE/UPDATE possibly mutate) `obj` before it is written.

        `old` is the stored object for UPDATE and DELETE (for DELETE `obj` is the stored object
        too), None for CREATE. Raise `Forbidden` or `Invalid` to refuse; nothing is written then.
        """
        ...
