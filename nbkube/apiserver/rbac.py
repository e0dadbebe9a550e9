"""Authorization as Kubernetes' RBAC authorizer does it: who may do what, from Roles and bindings.

The API server turns each authenticated request into `RequestAttributes` (`request_attributes` reads
the method, path and query exactly as kube-apiserver's RequestInfo does: `GET` of a collection is
`list`, or `watch` with `?watch=true`, `DELETE` of a collection is `deletecollection`) and asks
`RBACAuthorizer.authorize`; a refusal is answered with `forbidden_message`, in Kubernetes' words.

`RBACAuthorizer` keeps the four RBAC kinds in memory, fed by informers (list + watch of the
registry), with the bindings indexed by subject: a decision looks up the user's name and each of its
groups, in the ClusterRoleBindings (which apply everywhere) and in the RoleBindings of the request's
namespace, and checks only the rules of the bound roles that name the requested resource. Members of
`system:masters` are always allowed, as kube-apiserver's privileged-group authorizer allows them.

Requests carry whatever user object authentication produced: anything with `.name` and `.groups`.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from nbkube.api.meta import Obj, key_of
from nbkube.client.informer import Informer, InformerFactory
from nbkube.errors import BadRequest, Forbidden
from nbkube.registry.registry import Registry

__all__ = [
    "MASTERS",
    "RBAC_KINDS",
    "Decision",
    "NonResourceRule",
    "RBACAuthorizer",
    "RequestAttributes",
    "ResourceRule",
    "RuleSet",
    "Subject",
    "forbidden",
    "forbidden_message",
    "request_attributes",
    "resource_verb",
]

MASTERS = "system:masters"
RBAC_KINDS = ("Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding")
_SA_PREFIX = "system:serviceaccount:"
_REMEMBERED = 8192  # allowed requests kept by `RBACAuthorizer.remember_allowed`


class Subject(Protocol):
    """The authenticated user as the authorizer needs it (authentication's UserInfo has this shape)."""

    @property
    def name(self) -> str: ...

    @property
    def groups(self) -> Sequence[str]: ...


@dataclass(frozen=True)
class RequestAttributes:
    """What a request asks to do, in the terms RBAC rules speak (kube-apiserver's RequestInfo)."""

    user: Subject
    verb: str
    api_group: str = ""
    resource: str = ""
    subresource: str = ""
    name: str = ""
    namespace: str = ""
    path: str = ""
    is_resource_request: bool = True
    api_version: str = ""


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str = ""


# --- from an HTTP request to attributes ----------------------------------------------------------

_METHOD_VERBS = {
    "POST": "create",
    "GET": "get",
    "HEAD": "get",
    "PUT": "update",
    "PATCH": "patch",
    "DELETE": "delete",
}
_SPECIAL_VERBS = frozenset({"proxy", "watch"})  # /api/v1/watch/..., /api/v1/proxy/...
_NAMESPACE_SUBRESOURCES = frozenset({"status", "finalize"})


def _first(query: Any, key: str) -> str | None:
    """The first value of `key` in a query: aiohttp's MultiDict, parse_qs' lists or a plain dict."""
    if query is None:
        return None
    getall = getattr(query, "getall", None)
    if getall is not None:
        values = getall(key, [])
        return str(values[0]) if values else None
    value = query.get(key)
    if isinstance(value, list | tuple):
        return str(value[0]) if value else None
    return None if value is None else str(value)


def _is_true(value: str | None) -> bool:
    # metav1's bool query parameters: present and not "0", "f" or "false" means true (even "")
    return value is not None and value != "0" and value.lower() not in ("f", "false")


def _split_selector(text: str) -> list[tuple[str, str, str]] | None:
    """A field selector's terms as (field, operator, value), escapes honoured; None if malformed."""
    terms: list[tuple[str, str, str]] = []
    for raw in _split_unescaped(text, ","):
        if raw == "":
            continue
        found = None
        i = 0
        while i < len(raw):
            if raw[i] == "\\":
                i += 2
                continue
            for op in ("!=", "==", "="):
                if raw.startswith(op, i):
                    found = (raw[:i], op, raw[i + len(op) :])
                    break
            if found:
                break
            i += 1
        if found is None:
            return None
        fld, op, value = found
        terms.append((fld, op, _unescape(value)))
    return terms


def _split_unescaped(text: str, sep: str) -> list[str]:
    out, cur, i = [], "", 0
    while i < len(text):
        if text[i] == "\\" and i + 1 < len(text):
            cur += text[i : i + 2]
            i += 2
            continue
        if text[i] == sep:
            out.append(cur)
            cur = ""
        else:
            cur += text[i]
        i += 1
    out.append(cur)
    return out


def _unescape(value: str) -> str:
    return value.replace("\\,", ",").replace("\\=", "=").replace("\\\\", "\\")


def _valid_path_segment(name: str) -> bool:
    return name not in (".", "..") and "/" not in name and "%" not in name


def resource_verb(method: str, *, has_name: bool, query: Any = None) -> str:
    """The RBAC verb of a resource request by HTTP method, as kube-apiserver maps it.

    GET/HEAD of one object is `get`; of a collection `list`, or `watch` with `?watch=true`; DELETE of
    a collection is `deletecollection`; an unknown method maps to "" (nothing can allow it).
    """
    verb = _METHOD_VERBS.get(method.upper(), "")
    if not has_name and verb == "get":
        return "watch" if _is_true(_first(query, "watch")) else "list"
    if not has_name and verb == "delete":
        return "deletecollection"
    return verb


def request_attributes(user: Subject, method: str, path: str, query: Any = None) -> RequestAttributes:
    """The attributes of an HTTP request, by kube-apiserver's RequestInfo rules.

    `/api/v1/...` and `/apis/GROUP/VERSION/...` with a resource are resource requests; anything else
    (`/healthz`, `/api`, `/apis/apps/v1`, `/version`) is a non-resource request whose verb is the
    lowercased method. `?fieldSelector=metadata.name=X` on a list or watch names the object.
    """
    non_resource = RequestAttributes(user, method.lower(), path=path, is_resource_request=False)
    trimmed = path.strip("/")
    parts = trimmed.split("/") if trimmed else []
    if len(parts) < 3 or parts[0] not in ("api", "apis"):
        return non_resource
    prefix, parts = parts[0], parts[1:]
    group = ""
    if prefix == "apis":
        if len(parts) < 3:
            return non_resource
        group, parts = parts[0], parts[1:]
    version, parts = parts[0], parts[1:]
    via_method = parts[0] not in _SPECIAL_VERBS
    if not via_method:
        if len(parts) < 2:
            raise BadRequest(f"unable to determine kind and namespace from url, {path}")
        verb, parts = parts[0], parts[1:]
    else:
        verb = _METHOD_VERBS.get(method.upper(), "")
    namespace = ""
    if parts[0] == "namespaces" and len(parts) > 1:
        namespace = parts[1]
        if len(parts) > 2 and parts[2] not in _NAMESPACE_SUBRESOURCES:
            parts = parts[2:]
    subresource = parts[2] if len(parts) >= 3 and verb != "proxy" else ""
    name = parts[1] if len(parts) >= 2 else ""
    resource = parts[0]
    if not name and verb == "get":
        verb = "watch" if _is_true(_first(query, "watch")) else "list"
        selector = _first(query, "fieldSelector")
        terms = _split_selector(selector) if selector else None
        for fld, op, value in terms or ():
            if fld == "metadata.name" and op in ("=", "==") and _valid_path_segment(value):
                name = value
                break
    if not name and verb == "delete":
        verb = "deletecollection"
    return RequestAttributes(
        user,
        verb,
        api_group=group,
        resource=resource,
        subresource=subresource,
        name=name,
        namespace=namespace,
        path=path,
        is_resource_request=True,
        api_version=version,
    )


# --- Kubernetes' forbidden message ----------------------------------------------------------------


def _q(text: str) -> str:
    """Go's %q for the strings that occur here (names, verbs, paths)."""
    return json.dumps(text, ensure_ascii=False)


def _sanitize(text: str) -> str:
    # kube-apiserver escapes these so a reflected message cannot become markup
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def forbidden_message(attrs: RequestAttributes, reason: str = "") -> str:
    """The message of kube-apiserver's 403, e.g.
    `pods is forbidden: User "alice" cannot list resource "pods" in API group "" in the namespace "bob"`.
    """
    user = attrs.user.name
    if not attrs.is_resource_request:
        msg = f"User {_q(user)} cannot {attrs.verb} path {_q(attrs.path)}"
    else:
        resource = f"{attrs.resource}/{attrs.subresource}" if attrs.subresource else attrs.resource
        msg = (
            f"User {_q(user)} cannot {attrs.verb} resource {_q(resource)} in API group {_q(attrs.api_group)}"
        )
        if attrs.namespace:
            msg += f" in the namespace {_q(attrs.namespace)}"
        else:
            msg += " at the cluster scope"
    msg = _sanitize(msg)
    if reason:
        msg = f"{msg}: {reason}"
    if not attrs.is_resource_request or not attrs.resource:
        return f"forbidden: {msg}"
    qualified = f"{attrs.resource}.{attrs.api_group}" if attrs.api_group else attrs.resource
    if attrs.name:
        return f"{qualified} {_q(attrs.name)} is forbidden: {msg}"
    return f"{qualified} is forbidden: {msg}"


def forbidden(attrs: RequestAttributes, reason: str = "") -> Forbidden:
    """The error to raise for a refused request (403 with `forbidden_message`)."""
    return Forbidden(forbidden_message(attrs, reason))


# --- rules -----------------------------------------------------------------------------------------


def _strings(value: Any) -> tuple[str, ...]:
    return tuple(str(v) for v in value) if isinstance(value, list) else ()


@dataclass(frozen=True)
class ResourceRule:
    """One PolicyRule about resources, with its lists as sets for matching."""

    verbs: tuple[str, ...]
    api_groups: tuple[str, ...]
    resources: tuple[str, ...]
    resource_names: tuple[str, ...] = ()
    _verbs: frozenset[str] = field(init=False, repr=False, compare=False)
    _groups: frozenset[str] = field(init=False, repr=False, compare=False)
    _names: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_verbs", frozenset(self.verbs))
        object.__setattr__(self, "_groups", frozenset(self.api_groups))
        object.__setattr__(self, "_names", frozenset(self.resource_names))

    def matches(self, verb: str, group: str, name: str) -> bool:
        """Verb, group and name (the caller has matched the resource already)."""
        return (
            (verb in self._verbs or "*" in self._verbs)
            and (group in self._groups or "*" in self._groups)
            and (not self._names or name in self._names)
        )

    def allows(self, verb: str, group: str, resource: str, subresource: str = "", name: str = "") -> bool:
        """Upstream's RuleAllows for a resource request."""
        combined = f"{resource}/{subresource}" if subresource else resource
        return self.matches(verb, group, name) and any(
            r == "*" or r == combined or (subresource and r == f"*/{subresource}") for r in self.resources
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "verbs": list(self.verbs),
            "apiGroups": list(self.api_groups),
            "resources": list(self.resources),
        }
        if self.resource_names:
            out["resourceNames"] = list(self.resource_names)
        return out


@dataclass(frozen=True)
class NonResourceRule:
    """One PolicyRule about non-resource URLs; a URL ending in `*` matches every path it prefixes."""

    verbs: tuple[str, ...]
    urls: tuple[str, ...]

    def allows(self, verb: str, path: str) -> bool:
        if verb not in self.verbs and "*" not in self.verbs:
            return False
        for url in self.urls:
            if url == "*" or url == path or (url.endswith("*") and path.startswith(url[:-1])):
                return True
        return False

    def to_dict(self) -> dict[str, Any]:
        return {"verbs": list(self.verbs), "nonResourceURLs": list(self.urls)}


@dataclass(frozen=True)
class RuleSet:
    """What a user may do in one namespace (`rules_for`), with the references that did not resolve."""

    resource_rules: list[ResourceRule]
    non_resource_rules: list[NonResourceRule]
    errors: list[str]


class _Role:
    """A Role's or ClusterRole's rules, indexed by the resource string each rule names."""

    __slots__ = ("by_resource", "non_resource", "resource_rules")

    def __init__(self, obj: Obj):
        self.resource_rules: list[ResourceRule] = []
        self.non_resource: list[NonResourceRule] = []
        self.by_resource: dict[str, tuple[ResourceRule, ...]] = {}
        for raw in obj.get("rules") or []:
            if not isinstance(raw, dict):
                continue
            verbs = _strings(raw.get("verbs"))
            urls = _strings(raw.get("nonResourceURLs"))
            if urls:
                self.non_resource.append(NonResourceRule(verbs, urls))
                continue
            rule = ResourceRule(
                verbs,
                _strings(raw.get("apiGroups")),
                _strings(raw.get("resources")),
                _strings(raw.get("resourceNames")),
            )
            self.resource_rules.append(rule)
            for resource in dict.fromkeys(rule.resources):
                self.by_resource[resource] = (*self.by_resource.get(resource, ()), rule)

    def allows(self, a: RequestAttributes) -> bool:
        if not a.is_resource_request:
            return any(r.allows(a.verb, a.path) for r in self.non_resource)
        index = self.by_resource
        if not index:
            return False
        sub = a.subresource
        combined = f"{a.resource}/{sub}" if sub else a.resource
        for key in (combined, "*", f"*/{sub}") if sub else (combined, "*"):
            for rule in index.get(key, ()):
                if rule.matches(a.verb, a.api_group, a.name):
                    return True
        return False


class _Grant:
    """One subject of one binding: the role it gets and, for the allow reason, how to name them."""

    __slots__ = ("binding_kind", "binding_name", "namespace", "role_key", "role_kind", "role_name", "subject")

    def __init__(
        self,
        binding_kind: str,
        binding_name: str,
        namespace: str,
        role_kind: str,
        role_name: str,
        subject: str,
    ):
        self.binding_kind = binding_kind
        self.binding_name = binding_name
        self.namespace = namespace  # the binding's ("" for a ClusterRoleBinding)
        self.role_kind = role_kind
        self.role_name = role_name
        self.subject = subject  # upstream's describeSubject: `User "alice"`, `ServiceAccount "ci/team"`
        self.role_key = (role_kind, namespace if role_kind == "Role" else "", role_name)

    def describe(self) -> str:
        name = f"{self.binding_name}/{self.namespace}" if self.namespace else self.binding_name
        return f"{self.binding_kind} {_q(name)} of {self.role_kind} {_q(self.role_name)} to {self.subject}"

    def missing(self) -> str:
        return f"{self.role_kind.lower()}.rbac.authorization.k8s.io {_q(self.role_name)} not found"


class _Index:
    """Grants by subject: user names (service accounts under their user names) and group names."""

    __slots__ = ("groups", "users")

    def __init__(self) -> None:
        self.users: dict[str, tuple[_Grant, ...]] = {}
        self.groups: dict[str, tuple[_Grant, ...]] = {}


def _subjects(obj: Obj, namespace: str) -> list[tuple[bool, str, str]]:
    """(is a group, name, description) for each subject of a binding."""
    out = []
    for s in obj.get("subjects") or []:
        if not isinstance(s, dict):
            continue
        kind, name = str(s.get("kind", "")), str(s.get("name", ""))
        if kind == "User":
            out.append((False, name, f"User {_q(name)}"))
        elif kind == "Group":
            out.append((True, name, f"Group {_q(name)}"))
        elif kind == "ServiceAccount":
            ns = str(s.get("namespace") or namespace)
            # a service account authenticates as system:serviceaccount:NS:NAME (upstream MatchesUsername)
            out.append((False, f"{_SA_PREFIX}{ns}:{name}", f"ServiceAccount {_q(f'{name}/{ns}')}"))
    return out


class RBACAuthorizer:
    """Decides requests from the registry's Roles, ClusterRoles and bindings (an in-memory index).

    `start()` lists and watches the four kinds (on `informers` when given, shared with the rest of
    the process, else on informers of its own); `wait_synced()` before the first decision. Reads
    take no lock: index entries are immutable tuples that the informer threads replace whole.
    """

    def __init__(self, registry: Registry, *, informers: InformerFactory | None = None):
        self._own_factory = informers is None
        self._factory = informers if informers is not None else InformerFactory(registry)
        self._lock = threading.Lock()  # serialises the writers (four informer threads)
        self._roles: dict[tuple[str, str, str], _Role] = {}
        self._cluster = _Index()  # the ClusterRoleBindings' grants
        self._namespaced: dict[str, _Index] = {}  # namespace -> its RoleBindings' grants
        # binding -> where its grants are (to take them out again without the old object)
        self._entries: dict[tuple[str, str], list[tuple[str, bool, str, _Grant]]] = {}
        # bumped after every change of a role or binding; an allowed request remembered at an older
        # generation is decided again (see `allowed_at` and `remember_allowed`)
        self._generation = 0
        self._allowed: dict[Hashable, int] = {}
        self._informers: list[Informer] = []
        for kind in RBAC_KINDS:
            inf = self._factory.informer(kind)
            if kind.endswith("Binding"):
                inf.add_handler(
                    self._put_binding, lambda _old, new: self._put_binding(new), self._drop_binding
                )
            else:
                inf.add_handler(self._put_role, lambda _old, new: self._put_role(new), self._drop_role)
            self._informers.append(inf)

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> None:
        if self._own_factory:
            self._factory.start_all()

    def stop(self) -> None:
        if self._own_factory:
            self._factory.stop_all()

    def wait_synced(self, timeout: float = 10.0) -> bool:
        return all(inf.wait_synced(timeout) for inf in self._informers)

    def __enter__(self) -> RBACAuthorizer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- cache maintenance (informer threads) --------------------------------------------------------

    @staticmethod
    def _role_key(obj: Obj) -> tuple[str, str, str]:
        meta = obj.get("metadata") or {}
        namespace = str(meta.get("namespace") or "") if obj.get("kind") == "Role" else ""
        return (str(obj.get("kind")), namespace, str(meta.get("name", "")))

    def _put_role(self, obj: Obj) -> None:
        role = _Role(obj)
        with self._lock:
            self._roles[self._role_key(obj)] = role
            self._generation += 1

    def _drop_role(self, obj: Obj) -> None:
        with self._lock:
            self._roles.pop(self._role_key(obj), None)
            self._generation += 1

    def _put_binding(self, obj: Obj) -> None:
        kind = str(obj.get("kind"))
        namespace = str((obj.get("metadata") or {}).get("namespace") or "") if kind == "RoleBinding" else ""
        ref = obj.get("roleRef") or {}
        name = str((obj.get("metadata") or {}).get("name", ""))
        role_kind, role_name = str(ref.get("kind", "")), str(ref.get("name", ""))
        entries = [
            (namespace, is_group, subject, _Grant(kind, name, namespace, role_kind, role_name, described))
            for is_group, subject, described in _subjects(obj, namespace)
        ]
        with self._lock:
            self._remove_entries((kind, key_of(obj)))
            self._entries[(kind, key_of(obj))] = entries
            for ns, is_group, subject, grant in entries:
                index = self._namespaced.setdefault(ns, _Index()) if ns else self._cluster
                table = index.groups if is_group else index.users
                table[subject] = (*table.get(subject, ()), grant)
            self._generation += 1

    def _drop_binding(self, obj: Obj) -> None:
        with self._lock:
            self._remove_entries((str(obj.get("kind")), key_of(obj)))
            self._generation += 1

    def _remove_entries(self, binding: tuple[str, str]) -> None:
        for ns, is_group, subject, grant in self._entries.pop(binding, ()):
            index = self._namespaced.get(ns) if ns else self._cluster
            if index is None:
                continue
            table = index.groups if is_group else index.users
            rest = tuple(g for g in table.get(subject, ()) if g is not grant)
            if rest:
                table[subject] = rest
            else:
                table.pop(subject, None)

    # -- remembered decisions ------------------------------------------------------------------------

    @property
    def generation(self) -> int:
        """Read before deciding, passed to `remember_allowed`: a change meanwhile makes it stale."""
        return self._generation

    def allowed_at(self, key: Hashable) -> bool:
        """Whether the request `key` (whatever identifies user and request for the caller) was
        allowed with the roles and bindings as they are now."""
        return self._allowed.get(key) == self._generation

    def remember_allowed(self, key: Hashable, generation: int) -> None:
        """Remember that `key` was allowed when the index was at `generation`."""
        if len(self._allowed) >= _REMEMBERED:
            self._allowed.clear()  # bounded: the next requests are decided again
        self._allowed[key] = generation

    # -- decisions ---------------------------------------------------------------------------------

    def _grants(self, user: Subject, namespace: str) -> list[tuple[_Grant, ...]]:
        """The grants that apply to `user` in `namespace` ("" = cluster scope only), in upstream's
        order: ClusterRoleBindings first, then the namespace's RoleBindings."""
        name, groups = user.name, user.groups
        out = []
        for index in (self._cluster, self._namespaced.get(namespace) if namespace else None):
            if index is None:
                continue
            found = index.users.get(name)
            if found:
                out.append(found)
            by_group = index.groups
            for group in groups:
                found = by_group.get(group)
                if found:
                    out.append(found)
        return out

    def authorize(self, attrs: RequestAttributes) -> Decision:
        if MASTERS in attrs.user.groups:
            return Decision(True, f"allowed: a member of group {_q(MASTERS)}")
        namespace = attrs.namespace if attrs.is_resource_request else ""
        roles = self._roles
        missing: list[str] = []
        for grants in self._grants(attrs.user, namespace):
            for grant in grants:
                role = roles.get(grant.role_key)
                if role is None:
                    missing.append(grant.missing())
                elif role.allows(attrs):
                    return Decision(True, f"RBAC: allowed by {grant.describe()}")
        if not missing:
            return Decision(False, "")
        # upstream's aggregate error: one message alone, several in brackets
        detail = missing[0] if len(missing) == 1 else "[" + ", ".join(missing) + "]"
        return Decision(False, f"RBAC: {detail}")

    def resolve_rules(self, user: Subject, namespace: str) -> RuleSet:
        """Every rule that applies to `user` in `namespace` (cluster-wide ones included), deduplicated."""
        resource: dict[ResourceRule, None] = {}
        non_resource: dict[NonResourceRule, None] = {}
        errors: list[str] = []
        for grant in (g for grants in self._grants(user, namespace) for g in grants):
            role = self._roles.get(grant.role_key)
            if role is None:
                errors.append(grant.missing())
                continue
            resource.update(dict.fromkeys(role.resource_rules))
            if not grant.namespace:  # non-resource URLs are granted only cluster-wide
                non_resource.update(dict.fromkeys(role.non_resource))
        return RuleSet(list(resource), list(non_resource), errors)

    def rules_for(self, user: Subject, namespace: str) -> tuple[list[ResourceRule], list[NonResourceRule]]:
        rules = self.resolve_rules(user, namespace)
        return rules.resource_rules, rules.non_resource_rules
