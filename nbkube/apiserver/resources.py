"""The REST verbs on one resource URL, translated into Registry calls.

GET/LIST/POST/PUT/PATCH/DELETE of objects and of their `status` and `scale` subresources. Each
function takes the parsed Route, the query parameters and the decoded body and returns
(HTTP code, JSON body, extra headers); errors propagate as nbkube errors for `status.status_for`.
Watches stream and are handled in `watchstream`.
"""

from __future__ import annotations

import copy
import functools
from dataclasses import dataclass, field
from typing import Any

from nbkube.api import managedfields
from nbkube.api.fieldnames import unknown_fields
from nbkube.api.kinds import KindInfo
from nbkube.api.meta import Obj
from nbkube.api.patch import json_patch, merge_patch, strategic_merge_patch
from nbkube.api.wirenorm import from_wire
from nbkube.apiserver import status
from nbkube.apiserver.routing import Route, parse_field_selector
from nbkube.apiserver.tables import INCLUDE_OBJECT, to_table
from nbkube.clock import rfc3339
from nbkube.errors import AlreadyExists, BadRequest, Conflict, NotFound
from nbkube.registry.binding import binding_target
from nbkube.registry.registry import FieldsHook, Registry
from nbkube.registry.warnings import capture_warnings

__all__ = ["Request", "Response", "handle"]

APPLY_PATCH = "application/apply-patch+yaml"
PATCH_TYPES = (
    "application/merge-patch+json",
    "application/json-patch+json",
    "application/strategic-merge-patch+json",
    APPLY_PATCH,
)


@dataclass
class Request:
    method: str
    route: Route
    query: dict[str, str] = field(default_factory=dict)
    body: Any = None
    content_type: str = "application/json"
    table: bool = False  # the client asked for a meta.k8s.io Table
    user_agent: str = ""  # names the field manager of a write without `fieldManager`


@dataclass
class Response:
    code: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)


def handle(registry: Registry, req: Request) -> Response:
    """Serve one request; warnings admission raised for it (Pod Security `warn`) become `Warning`
    headers next to fieldValidation's, as the Kubernetes API server sends them."""
    with capture_warnings() as warnings:
        resp = _dispatch(registry, req)
    if warnings:
        texts = [f'299 - "{_quoted(t)}"' for t in warnings]
        if resp.headers.get("Warning"):
            texts.insert(0, resp.headers["Warning"])
        resp.headers["Warning"] = ", ".join(texts)
    return resp


def _quoted(text: str) -> str:
    """`text` as the inside of an HTTP quoted-string (kubectl unescapes it)."""
    return text.replace("\\", "\\\\").replace('"', '\\"')


def _dispatch(registry: Registry, req: Request) -> Response:
    r = req.route
    if r.subresource == "scale":
        return _scale(registry, req)
    if r.subresource == "eviction":
        return _evict(registry, req)
    if r.subresource == "binding":
        return _bind(registry, req)
    if req.method == "GET":
        return _get(registry, req) if r.name else _list(registry, req)
    if req.method == "POST" and not r.name:
        return _create(registry, req)
    if req.method == "PUT" and r.name:
        return _update(registry, req)
    if req.method == "PATCH" and r.name and req.content_type.split(";")[0].strip() == APPLY_PATCH:
        return _server_apply(registry, req)
    if req.method == "PATCH" and r.name:
        return Response(200, _patch(registry, req))
    if req.method == "DELETE" and r.name and not r.subresource:
        return _delete(registry, req)
    if req.method == "DELETE" and not r.name:
        return _delete_collection(registry, req)
    raise MethodNotAllowed(f"the server does not allow this method on the requested resource ({req.method})")


# Kinds whose DELETE answers with the deleted object rather than a Success Status: upstream's
# registries with ReturnDeletedObject (pods, services, serviceaccounts) and the namespace REST,
# which returns the Namespace it marked Terminating. The official Python client's
# delete_namespaced_service parses a V1Service (a Status there fails its typed model).
RETURNS_DELETED_OBJECT = frozenset({"Pod", "Service", "ServiceAccount", "Namespace"})


class MethodNotAllowed(BadRequest):
    reason = "MethodNotAllowed"
    code = 405


# --- read ------------------------------------------------------------------------------------------


def _include(req: Request) -> str:
    value = req.query.get("includeObject", "Metadata") or "Metadata"
    if value not in INCLUDE_OBJECT:
        raise BadRequest(f'includeObject must be one of {", ".join(INCLUDE_OBJECT)}, got "{value}"')
    return value


def _get(registry: Registry, req: Request) -> Response:
    r = req.route
    obj = registry.get(r.info.kind, r.name, r.namespace)
    if req.table and not r.subresource:
        return Response(200, to_table(r.info, [obj], include_object=_include(req)))
    return Response(200, obj)


def list_objects(registry: Registry, req: Request) -> tuple[list[Obj], str]:
    r = req.route
    items, rv = registry.list(r.info.kind, r.namespace, label_selector=req.query.get("labelSelector") or None)
    reqs = parse_field_selector(req.query.get("fieldSelector", ""))
    if reqs:
        items = [o for o in items if all(q.matches(o) for q in reqs)]
    return items, rv


def _limit(req: Request) -> int:
    raw = req.query.get("limit", "")
    try:
        value = int(raw) if raw else 0
    except ValueError:
        raise BadRequest(f'limit must be an integer, got "{raw}"') from None
    return max(value, 0)  # as upstream: zero or less means no limit


def _list(registry: Registry, req: Request) -> Response:
    """A list, or one page of it with `limit` (and `continue` for the next ones)."""
    r = req.route
    token = req.query.get("continue", "")
    if token and req.query.get("resourceVersion", "") not in ("", "0"):
        raise BadRequest("specifying resource version is not allowed when using continue")
    fields = parse_field_selector(req.query.get("fieldSelector", ""))
    page = registry.list_page(
        r.info.kind,
        r.namespace,
        label_selector=req.query.get("labelSelector") or None,
        predicate=(lambda o: all(q.matches(o) for q in fields)) if fields else None,
        limit=_limit(req),
        continue_token=token,
    )
    if req.table:
        body = to_table(
            r.info, page.items, resource_version=page.resource_version, include_object=_include(req)
        )
    else:
        body = list_body(r.info, page.items, page.resource_version)
    if page.continue_token:
        body["metadata"]["continue"] = page.continue_token
    if page.remaining is not None:
        body["metadata"]["remainingItemCount"] = page.remaining
    return Response(200, body)


def list_body(info: KindInfo, items: list[Obj], resource_version: str) -> Obj:
    """A `{Kind}List` as the apiserver returns for a list (and for a deletecollection)."""
    return {
        "kind": f"{info.kind}List",
        "apiVersion": info.api_version,
        "metadata": {"resourceVersion": resource_version},
        "items": items,
    }


# --- write -----------------------------------------------------------------------------------------


def _body_object(req: Request) -> Obj:
    obj = req.body
    if not isinstance(obj, dict):
        raise BadRequest("the request body must be a JSON object")
    r = req.route
    obj = from_wire(obj)  # a copy in which null means absent (`"metadata": null` included)
    obj.setdefault("apiVersion", r.info.api_version)
    obj.setdefault("kind", r.info.kind)
    if obj["kind"] != r.info.kind or obj["apiVersion"] != r.info.api_version:
        raise BadRequest(
            f"the body is a {obj['apiVersion']} {obj['kind']} but the URL is for {r.info.api_version} {r.info.kind}"
        )
    meta = obj.setdefault("metadata", {})
    if not isinstance(meta, dict):
        raise BadRequest("metadata must be a JSON object")
    if r.info.namespaced and r.namespace:
        if meta.get("namespace") and meta["namespace"] != r.namespace:
            raise BadRequest(
                "the namespace of the provided object does not match the namespace sent on the request"
            )
        meta["namespace"] = r.namespace
    if r.name and meta.get("name") and meta["name"] != r.name:
        raise BadRequest("the name of the object does not match the name on the URL")
    if r.name:
        meta["name"] = r.name
    return obj


def _field_validation(req: Request, obj: Obj) -> dict[str, str]:
    """Server-side field validation as kubectl asks for it: Strict refuses unknown fields, Warn
    reports them in a `Warning` header, Ignore (and no parameter) skips the check."""
    mode = req.query.get("fieldValidation", "")
    if mode not in ("", "Ignore", "Warn", "Strict"):
        raise BadRequest(f'fieldValidation must be Ignore, Warn or Strict, got "{mode}"')
    if mode in ("", "Ignore"):
        return {}
    problems = unknown_fields(obj)
    if not problems:
        return {}
    texts = [
        f"unknown field {str(p.path)!r}" if not p.message else f"{p.path}: {p.message}" for p in problems
    ]
    if mode == "Strict":
        raise BadRequest("strict decoding error: " + ", ".join(texts))
    return {"Warning": ", ".join(f'299 - "{_quoted(t)}"' for t in texts)}


def _dry_run(req: Request, options: Any = None) -> bool:
    """Whether the request is a dry run: `?dryRun=All`, or DeleteOptions' `dryRun: ["All"]` in the
    body (kubectl delete --dry-run=server sends only the latter). "All" is the one value the
    apiserver knows; anything else is refused, as upstream refuses it, so no write slips through."""
    values: list[Any] = []
    if "dryRun" in req.query:
        values.append(req.query["dryRun"])
    body_values = options.get("dryRun") if isinstance(options, dict) else None
    if body_values is not None:
        if not isinstance(body_values, list):
            raise BadRequest(f"dryRun must be a list of strings, got {body_values!r}")
        values.extend(body_values)
    for value in values:
        if value != "All":
            raise BadRequest(f'invalid dryRun value "{value}": the only supported value is "All"')
    return bool(values)


def _manager(req: Request) -> str:
    """The write's field manager: `fieldManager`, else the User-Agent's product (upstream's
    `kubectl-client-side-apply`, `kubectl-edit`... come as `fieldManager` from kubectl itself)."""
    name = req.query.get("fieldManager", "")
    if name:
        managedfields.validate_manager(name)
        return name
    return managedfields.manager_from_user_agent(req.user_agent)


def _ownership(registry: Registry, req: Request, subresource: str = "") -> FieldsHook:
    """The registry hook that records this request's manager in metadata.managedFields (every
    write through the API records it, as kube-apiserver does)."""
    manager = _manager(req)
    info = req.route.info

    def record(new: Obj, old: Obj | None) -> None:
        managedfields.record_update(
            old,
            new,
            kind=info.kind,
            api_version=info.api_version,
            manager=manager,
            now=rfc3339(registry.clock.now()),
            subresource=subresource,
        )

    return record


def _no_force(req: Request) -> None:
    if "force" in req.query:
        raise BadRequest("force: Forbidden: may not be specified for non-apply patch")


def _create(registry: Registry, req: Request) -> Response:
    dry_run = _dry_run(req)
    obj = _body_object(req)
    headers = _field_validation(req, obj)
    return Response(
        201, registry.create(obj, dry_run=dry_run, managed_fields=_ownership(registry, req)), headers
    )


def _update(registry: Registry, req: Request) -> Response:
    dry_run = _dry_run(req)
    obj = _body_object(req)
    if req.route.subresource == "status":
        hook = _ownership(registry, req, "status")
        return Response(200, registry.update_status(obj, dry_run=dry_run, managed_fields=hook))
    headers = _field_validation(req, obj)
    return Response(
        200, registry.update(obj, dry_run=dry_run, managed_fields=_ownership(registry, req)), headers
    )


def apply_patch(doc: Obj, patch: Any, content_type: str, kind: str) -> Obj:
    """`doc` with `patch` applied per its content type, by nbkube.api.patch."""
    if content_type == "application/json-patch+json":
        if not isinstance(patch, list):
            raise BadRequest("a JSON patch must be a list of operations")
        return json_patch(doc, patch)
    if not isinstance(patch, dict):
        raise BadRequest("a merge patch must be a JSON object")
    if content_type == "application/merge-patch+json":
        return merge_patch(doc, patch)
    return strategic_merge_patch(doc, patch, kind)


class UnsupportedMediaType(BadRequest):
    reason = "UnsupportedMediaType"
    code = 415


def _patch_type(req: Request) -> str:
    ctype = req.content_type.split(";")[0].strip()
    if ctype not in PATCH_TYPES:
        raise UnsupportedMediaType(
            f'the body of the request was in an unknown format ("{ctype}"); accepted: {", ".join(PATCH_TYPES)}'
        )
    return ctype


def _patch(registry: Registry, req: Request) -> Obj:
    """Patch the current object and write it back (Registry.mutate: at its resourceVersion, again
    on Conflict, unless the patch itself pins a resourceVersion)."""
    dry_run = _dry_run(req)
    _no_force(req)
    r = req.route
    ctype = _patch_type(req)
    hook = _ownership(registry, req, "status" if r.subresource == "status" else "")

    def change(cur: Obj) -> Obj:
        new = apply_patch(cur, req.body, ctype, r.info.kind)
        if not isinstance(new, dict):
            raise BadRequest("the patched object is not a JSON object")
        meta = new.get("metadata") or {}
        if meta.get("name") != r.name or (
            r.info.namespaced and meta.get("namespace") != cur["metadata"].get("namespace")
        ):
            raise BadRequest("a patch may not change the object's name or namespace")
        if r.subresource != "status":
            _field_validation(req, new)
        return new

    return registry.mutate(
        r.info.kind,
        r.name,
        r.namespace,
        change,
        status=r.subresource == "status",
        dry_run=dry_run,
        managed_fields=hook,
    )


_APPLY_RETRIES = 10


class InvalidOptions(BadRequest):
    """Request options kube-apiserver validates as an object (PatchOptions): 422 Invalid."""

    reason = "Invalid"
    code = 422


def _force(req: Request) -> bool:
    value = req.query.get("force", "false") or "false"
    if value not in ("true", "false"):
        raise BadRequest(f'force must be true or false, got "{value}"')
    return value == "true"


def _server_apply(registry: Registry, req: Request) -> Response:
    """PATCH with an apply configuration: server-side apply (nbkube/api/managedfields.py merges
    it into the live object by field ownership; a missing object is created, 201). Another
    manager's field the configuration would change is a 409 with the conflicts as causes, unless
    `force=true`. Retried on a write Conflict unless the configuration pins a resourceVersion."""
    config = _body_object(req)
    headers = _field_validation(req, config)
    code, obj = _apply(registry, req, config, req.route.subresource)
    return Response(code, obj, headers)


def _apply(registry: Registry, req: Request, config: Obj, subresource: str) -> tuple[int, Obj]:
    """Server-side apply of `config` to the object of the route (created when missing, unless a
    subresource is applied): the HTTP code and the object written (or left as it was)."""
    dry_run = _dry_run(req)
    manager = req.query.get("fieldManager", "")
    if not manager:
        raise InvalidOptions(
            'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: is required for apply patch'
        )
    managedfields.validate_manager(manager)
    force = _force(req)
    r = req.route
    status_only = subresource == "status"
    pinned = bool(config["metadata"].get("resourceVersion"))
    for attempt in range(_APPLY_RETRIES):
        try:
            live: Obj | None = registry.get(r.info.kind, r.name, r.namespace)
        except NotFound:
            if subresource:
                raise
            live = None
        new = managedfields.apply(
            live,
            config,
            kind=r.info.kind,
            api_version=r.info.api_version,
            manager=manager,
            now=rfc3339(registry.clock.now()),
            force=force,
            subresource=subresource,
        )
        try:
            if live is None:
                return 201, registry.create(new, dry_run=dry_run)
            if new == live:
                return 200, live  # nothing to write: same resourceVersion
            if not pinned:
                new["metadata"]["resourceVersion"] = live["metadata"]["resourceVersion"]
            if status_only:
                # update_status keeps the stored metadata: hand it the applied managedFields
                owners = new["metadata"].get("managedFields")
                hook = functools.partial(_set_managed_fields, owners)
                return 200, registry.update_status(new, dry_run=dry_run, managed_fields=hook)
            return 200, registry.update(new, dry_run=dry_run)
        except (AlreadyExists, Conflict) as e:
            if isinstance(e, managedfields.ApplyConflict) or pinned or attempt == _APPLY_RETRIES - 1:
                raise
    raise AssertionError("unreachable")


def _set_managed_fields(owners: Any, new: Obj, _old: Obj | None) -> None:
    if owners:
        new["metadata"]["managedFields"] = owners
    else:
        new["metadata"].pop("managedFields", None)


def _delete(registry: Registry, req: Request) -> Response:
    r = req.route
    opts = req.body if isinstance(req.body, dict) else {}
    dry_run = _dry_run(req, opts)
    policy = req.query.get("propagationPolicy") or str(opts.get("propagationPolicy") or "Background")
    if policy not in ("Background", "Foreground", "Orphan"):
        raise BadRequest(f'propagationPolicy must be Background, Foreground or Orphan, got "{policy}"')
    precondition = (opts.get("preconditions") or {}).get("resourceVersion")
    # Foreground has no registry equivalent: deletion is immediate, the garbage collector follows
    # (gracePeriodSeconds is accepted and ignored for the same reason: objects go at once)
    obj = registry.delete(
        r.info.kind,
        r.name,
        r.namespace,
        resource_version=str(precondition) if precondition else None,
        propagation="Orphan" if policy == "Orphan" else "Background",
        dry_run=dry_run,
    )
    if r.info.kind in RETURNS_DELETED_OBJECT or policy != "Background":
        # Orphan/Foreground: upstream answers with the object (its finalizer still holds it)
        return Response(200, obj)
    return Response(200, status.success(r.info, r.name, str(obj["metadata"].get("uid", ""))))


def _evict(registry: Registry, req: Request) -> Response:
    """POST pods/NAME/eviction (what `kubectl drain` sends): a delete the pod's PodDisruptionBudget
    may refuse with 429 (registry/eviction.py); 201 with a Success Status, as the apiserver answers."""
    if req.method != "POST":
        raise MethodNotAllowed(f"{req.method} is not allowed on pods/eviction")
    r = req.route
    body = req.body if isinstance(req.body, dict) else {}
    opts = body.get("deleteOptions") or {}
    dry_run = _dry_run(req, opts)
    precondition = (opts.get("preconditions") or {}).get("resourceVersion")
    obj = registry.evict(
        r.name,
        r.namespace,
        resource_version=str(precondition) if precondition else None,
        dry_run=dry_run,
    )
    done = status.success(r.info, r.name, str(obj["metadata"].get("uid", "")))
    return Response(201, {**done, "code": 201})


def _bind(registry: Registry, req: Request) -> Response:
    """POST pods/NAME/binding (a scheduler's bind): the pod put on the Binding's node, or 409 if it
    is on one already (registry/binding.py); 201 with a Success Status, as the apiserver answers."""
    if req.method != "POST":
        raise MethodNotAllowed(f"{req.method} is not allowed on pods/binding")
    r = req.route
    registry.bind(r.name, r.namespace, binding_target(req.body, r.name), dry_run=_dry_run(req))
    # upstream's BindingREST answers a bare Success, without details
    return Response(201, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201})


def _delete_collection(registry: Registry, req: Request) -> Response:
    """`deletecollection`: every object the selectors match, one delete each; the deleted list."""
    dry_run = _dry_run(req, req.body)
    r = req.route
    items, _rv = list_objects(registry, req)
    deleted = []
    for obj in items:
        meta = obj["metadata"]
        try:
            deleted.append(
                registry.delete(r.info.kind, meta["name"], str(meta.get("namespace", "")), dry_run=dry_run)
            )
        except NotFound:
            continue  # deleted meanwhile by someone else: what was asked for holds
    rv = deleted[-1]["metadata"]["resourceVersion"] if deleted and not dry_run else _rv
    return Response(200, list_body(r.info, deleted, rv))


# --- scale -----------------------------------------------------------------------------------------


def _apply_scale(registry: Registry, req: Request) -> Response:
    """Server-side apply of a Scale: its `spec.replicas` applied to the parent's, owned by the
    manager with `subresource: scale` (as kube-apiserver records it against the parent)."""
    r = req.route
    body = req.body
    if not isinstance(body, dict) or not isinstance(body.get("spec") or {}, dict):
        raise BadRequest("the request body must be a Scale object")
    config: Obj = {"apiVersion": r.info.api_version, "kind": r.info.kind, "metadata": {"name": r.name}}
    if "replicas" in (body.get("spec") or {}):
        replicas = body["spec"]["replicas"]
        if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
            raise BadRequest(f"spec.replicas must be a non-negative integer, got {replicas!r}")
        config["spec"] = {"replicas": replicas}
    if r.info.namespaced:
        config["metadata"]["namespace"] = r.namespace
    _code, obj = _apply(registry, req, config, "scale")
    return Response(200, scale_of(obj))


def _selector_text(obj: Obj) -> str:
    sel = (obj.get("spec") or {}).get("selector") or {}
    if isinstance(sel, dict) and ("matchLabels" in sel or "matchExpressions" in sel):
        sel = sel.get("matchLabels") or {}
    return ",".join(f"{k}={v}" for k, v in sel.items()) if isinstance(sel, dict) else ""


def scale_of(obj: Obj) -> Obj:
    meta = obj["metadata"]
    return {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            k: meta[k]
            for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
            if k in meta
        },
        "spec": {"replicas": int((obj.get("spec") or {}).get("replicas", 1))},
        "status": {
            "replicas": int((obj.get("status") or {}).get("replicas") or 0),
            "selector": _selector_text(obj),
        },
    }


def _scale(registry: Registry, req: Request) -> Response:
    r = req.route
    if req.method == "GET":
        return Response(200, scale_of(registry.get(r.info.kind, r.name, r.namespace)))
    if req.method not in ("PUT", "PATCH"):
        raise MethodNotAllowed(f"{req.method} is not allowed on {r.info.plural}/scale")
    dry_run = _dry_run(req)
    ctype = _patch_type(req) if req.method == "PATCH" else ""
    if ctype == APPLY_PATCH:
        return _apply_scale(registry, req)
    _no_force(req)
    hook = _ownership(registry, req, "scale")

    def change(cur: Obj) -> Obj:
        if req.method == "PUT":
            wanted = req.body
            if not isinstance(wanted, dict):
                raise BadRequest("the request body must be a Scale object")
        else:
            wanted = apply_patch(scale_of(cur), req.body, ctype, "Scale")
        replicas = (wanted.get("spec") or {}).get("replicas")
        if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
            raise BadRequest(f"spec.replicas must be a non-negative integer, got {replicas!r}")
        new = copy.deepcopy(cur)
        new.setdefault("spec", {})["replicas"] = replicas
        # a resourceVersion in the Scale pins the write (no retry), as a patch's does
        new["metadata"]["resourceVersion"] = str((wanted.get("metadata") or {}).get("resourceVersion") or "")
        return new

    return Response(
        200,
        scale_of(
            registry.mutate(r.info.kind, r.name, r.namespace, change, dry_run=dry_run, managed_fields=hook)
        ),
    )
