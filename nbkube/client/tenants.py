"""Tenants of a shared cluster: one namespace per user, fenced in, and a kubeconfig for them.

Who calls it: `nbkube tenant create|delete|list|kubeconfig` (nbkube/cli/cmd_tenant.py) and a
notebook's `cluster.tenants` (nbkube/cluster.py). The logic is written once against the registry's
verbs (get, list, create, delete), so it runs the same over a `Registry` (a cluster's store) and a
`RestClient` (through the API server, as whoever the kubeconfig names).

`create(NAME)` makes, all or nothing (a failure deletes again what this call made):

- Namespace NAME, labelled `nbkube.io/tenant: NAME` and Pod Security `restricted` for enforce,
  warn and audit (the tenant's admin role cannot change a namespace's labels). `pod_security=
  "baseline"` is the one other level offered, for clusters on the process runtime: it cannot
  confine a process with seccomp, which `restricted` demands of every pod, so there such pods are
  admitted and then fail to start, saying so;
- ResourceQuota `tenant-quota`: pods and cpu/memory requests and limits (`--cpu/--memory/--pods`);
- LimitRange `tenant-limits`: default requests and limits per container, so a pod that names no
  resources is admitted under the quota (clamped to the quota when it is smaller);
- NetworkPolicies `default-deny` (ingress and egress), `allow-same-namespace` (pods of the
  namespace reach each other) and `allow-dns`: egress on UDP and TCP 53 to the pods labelled
  `k8s-app: kube-dns` in the namespace `kube-system`, as upstream tenants write it. nbkube's
  cluster DNS is no pod but a server on the host bridge; the firewall counts kube-dns's endpoint
  addresses as those pods and opens exactly the DNS server's address and port, nothing else on the
  host (nbkube/node/firewall/policy.py says why this way and not an ipBlock);
- RoleBinding `NAME-admin` of ClusterRole `admin` to User NAME in the namespace;
- a kubeconfig (0600) whose default namespace is NAME, with the credential chosen by
  `credential=`: "certificate" (CN=NAME, issued by the cluster CA: needs the cluster's `pki/`
  folder to be readable here), "token" (through the API only: ServiceAccount NAME in the
  namespace, RoleBinding `NAME-serviceaccount-admin`, and a TokenRequest for the longest lifetime
  the API server grants, 48 hours), or "auto" (the certificate when the PKI is readable, else the
  token). Over a store no API server serves (no live `apiserver.json` in the cluster's folder) the
  objects are made and no kubeconfig is written; the result says so and `kubeconfig(NAME)` makes
  one later.

A client certificate cannot be revoked before it expires (365 days); `delete(NAME)` removes the
bindings (first, so access ends at once) and the namespace, which takes everything in it along.
"""

from __future__ import annotations

import contextlib
import html
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from nbkube.api.defaults import NAMESPACE_NAME_LABEL
from nbkube.api.meta import Obj
from nbkube.api.naming import check_dns1123_label
from nbkube.api.quantity import QuantityError, parse_decimal
from nbkube.client.apiserverinfo import running_api_server
from nbkube.client.kubeconfig import write_kubeconfig
from nbkube.errors import AlreadyExists, BadRequest, NbkubeError, NotFound
from nbkube.security.files import CredentialError, read_private
from nbkube.security.pki import ClusterPKI
from nbkube.security.tokens import MAX_EXPIRATION_SECONDS

__all__ = [
    "CREDENTIALS",
    "POD_SECURITY_LEVELS",
    "TENANT_LABEL",
    "TenantInfo",
    "TenantResult",
    "Tenants",
    "check_tenant_name",
    "tenant_objects",
]

TENANT_LABEL = "nbkube.io/tenant"
CREDENTIALS = ("auto", "certificate", "token")
POD_SECURITY_LEVELS = ("restricted", "baseline")
RBAC = "rbac.authorization.k8s.io"
QUOTA_NAME = "tenant-quota"
LIMITS_NAME = "tenant-limits"
DEFAULT_CPU = "2"
DEFAULT_MEMORY = "4Gi"
DEFAULT_PODS = 10
# what a container that names no resources gets (the LimitRange's defaults)
_DEFAULT_REQUEST = {"cpu": "100m", "memory": "128Mi"}
_DEFAULT_LIMIT = {"cpu": "500m", "memory": "256Mi"}
_RESERVED = ("default", "kube-system", "kube-public", "kube-node-lease")
_PSA = "pod-security.kubernetes.io"
ADMIN_USER_NAME = "kubernetes-admin"  # the admin kubeconfig's user (nbkube/apiserver/authn.py)


def check_tenant_name(name: Any) -> str:
    """`name` when it can be a tenant (a DNS label, not a system namespace); else BadRequest."""
    if not isinstance(name, str) or not name:
        raise BadRequest("tenant name: required (a DNS label such as alice)")
    problems = check_dns1123_label(name)
    if problems:
        raise BadRequest(f"tenant name {name!r}: {problems[0]}")
    if name in _RESERVED or name.startswith("kube-"):
        raise BadRequest(f"tenant name {name!r}: a system namespace's name; choose another")
    if name == ADMIN_USER_NAME:
        raise BadRequest(f"tenant name {name!r}: the cluster admin's user name; choose another")
    return name


@dataclass(frozen=True)
class _Quota:
    cpu: str
    memory: str
    pods: int

    @classmethod
    def checked(cls, cpu: Any, memory: Any, pods: Any) -> _Quota:
        for flag, value in (("--cpu", cpu), ("--memory", memory)):
            try:
                if parse_decimal(value) <= 0:
                    raise BadRequest(f"{flag} {value}: must be more than 0")
            except QuantityError as exc:
                raise BadRequest(f"{flag}: {exc}") from None
        if isinstance(pods, bool) or not isinstance(pods, int) or pods < 1:
            raise BadRequest(f"--pods: must be a whole number of at least 1, got {pods!r}")
        return cls(str(cpu), str(memory), pods)


def _smaller(a: str, b: str) -> str:
    return a if parse_decimal(a) <= parse_decimal(b) else b


def tenant_objects(
    name: str,
    *,
    cpu: Any = DEFAULT_CPU,
    memory: Any = DEFAULT_MEMORY,
    pods: Any = DEFAULT_PODS,
    pod_security: str = "restricted",
) -> list[Obj]:
    """The objects `create` makes for tenant `name`, namespace first (nothing is written here)."""
    check_tenant_name(name)
    if pod_security not in POD_SECURITY_LEVELS:
        raise BadRequest(
            f"--pod-security must be one of {', '.join(POD_SECURITY_LEVELS)}, got {pod_security!r}"
        )
    quota = _Quota.checked(cpu, memory, pods)
    labels = {TENANT_LABEL: name}
    caps = {"cpu": quota.cpu, "memory": quota.memory}
    limit = {r: _smaller(v, caps[r]) for r, v in _DEFAULT_LIMIT.items()}
    request = {r: _smaller(v, limit[r]) for r, v in _DEFAULT_REQUEST.items()}

    def meta(obj_name: str) -> dict[str, Any]:
        return {"name": obj_name, "namespace": name, "labels": dict(labels)}

    everything: dict[str, Any] = {"podSelector": {}}
    return [
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {
                "name": name,
                "labels": {
                    **labels,
                    f"{_PSA}/enforce": pod_security,
                    # what restricted would refuse is still warned about and audited
                    **{f"{_PSA}/{mode}": "restricted" for mode in ("warn", "audit")},
                    **{f"{_PSA}/{mode}-version": "latest" for mode in ("enforce", "warn", "audit")},
                },
            },
        },
        {
            "apiVersion": "v1",
            "kind": "ResourceQuota",
            "metadata": meta(QUOTA_NAME),
            "spec": {
                "hard": {
                    "pods": str(quota.pods),
                    "requests.cpu": quota.cpu,
                    "requests.memory": quota.memory,
                    "limits.cpu": quota.cpu,
                    "limits.memory": quota.memory,
                }
            },
        },
        {
            "apiVersion": "v1",
            "kind": "LimitRange",
            "metadata": meta(LIMITS_NAME),
            "spec": {"limits": [{"type": "Container", "default": limit, "defaultRequest": request}]},
        },
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": meta("default-deny"),
            "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]},
        },
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": meta("allow-same-namespace"),
            "spec": {
                "podSelector": {},
                "policyTypes": ["Ingress", "Egress"],
                "ingress": [{"from": [everything]}],
                "egress": [{"to": [everything]}],
            },
        },
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": meta("allow-dns"),
            "spec": {
                "podSelector": {},
                "policyTypes": ["Egress"],
                "egress": [
                    {
                        "to": [
                            {
                                "namespaceSelector": {"matchLabels": {NAMESPACE_NAME_LABEL: "kube-system"}},
                                "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
                            }
                        ],
                        "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
                    }
                ],
            },
        },
        _admin_binding(name, f"{name}-admin", {"kind": "User", "apiGroup": RBAC, "name": name}),
    ]


def _admin_binding(namespace: str, binding: str, subject: dict[str, str]) -> Obj:
    return {
        "apiVersion": f"{RBAC}/v1",
        "kind": "RoleBinding",
        "metadata": {"name": binding, "namespace": namespace, "labels": {TENANT_LABEL: namespace}},
        "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": "admin"},
        "subjects": [subject],
    }


def _service_account_objects(name: str) -> list[Obj]:
    return [
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": name, "namespace": name, "labels": {TENANT_LABEL: name}},
        },
        _admin_binding(
            name, f"{name}-serviceaccount-admin", {"kind": "ServiceAccount", "name": name, "namespace": name}
        ),
    ]


@dataclass
class TenantResult:
    """What `create` (or `kubeconfig`) made: objects as (kind, name), the kubeconfig and how it
    authenticates; `note` says why there is no kubeconfig when there is none."""

    name: str
    objects: list[tuple[str, str]] = field(default_factory=list)
    kubeconfig: str | None = None
    credential: str = ""
    server: str | None = None
    note: str = ""

    def rows(self) -> list[tuple[str, str, str]]:
        out = [(kind, name, "" if kind == "Namespace" else self.name) for kind, name in self.objects]
        if self.kubeconfig:
            out.append(("kubeconfig", self.kubeconfig, self.credential))
        return out

    def __str__(self) -> str:
        lines = [
            f"{kind.lower()}/{name}" + (f" -n {ns}" if ns and kind != "kubeconfig" else "")
            for kind, name, ns in self.rows()
            if kind != "kubeconfig"
        ]
        if self.kubeconfig:
            lines.append(f"kubeconfig {self.kubeconfig} ({self.credential}; server {self.server})")
        if self.note:
            lines.append(self.note)
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        cells = "".join(
            f"<tr><td>{html.escape(k)}</td><td>{html.escape(n)}</td><td>{html.escape(ns)}</td></tr>"
            for k, n, ns in self.rows()
        )
        note = f"<p>{html.escape(self.note)}</p>" if self.note else ""
        return (
            f"<b>tenant {html.escape(self.name)}</b><table><tr><th>kind</th><th>name</th>"
            f"<th>namespace / credential</th></tr>{cells}</table>{note}"
        )


@dataclass
class TenantInfo:
    """One tenant as `list` shows it: its namespace and the quota's hard limits and usage."""

    name: str
    phase: str
    hard: dict[str, str]
    used: dict[str, str]
    namespace: Obj = field(default_factory=dict)

    def usage(self, resource: str) -> str:
        hard = self.hard.get(resource)
        if hard is None:
            return "-"
        return f"{self.used.get(resource, '?')}/{hard}"


def _is_rest(api: Any) -> bool:
    return callable(getattr(api, "request", None)) and getattr(api, "target", None) is not None


def _readable_pki(folder: str) -> ClusterPKI | None:
    """The cluster PKI in `folder` when its CA and key are there and readable by this process."""
    try:
        read_private(os.path.join(folder, "ca.key"))
        read_private(os.path.join(folder, "ca.crt"))
    except (OSError, CredentialError):
        return None
    return ClusterPKI(folder).ensure()


class Tenants:
    """Tenant operations on `api` (a Registry or a RestClient); see the module docstring.

    `folder`: the cluster's folder (keys, `pki/`, `apiserver.json`); by default the registry's
    `credentials_dir`, or, through the API, the folder whose CA is the kubeconfig's (the
    kubeconfig's own folder, then each of ~/.nbkube/clusters/*)."""

    def __init__(self, api: Any, *, folder: str | None = None):
        self.api = api
        self.folder = folder if folder is not None else self._find_folder()

    def _find_folder(self) -> str | None:
        if not _is_rest(self.api):
            return getattr(self.api, "credentials_dir", None) or None
        target = self.api.target
        if not target.ca_pem:
            return None
        candidates = [os.path.dirname(target.path)] if target.path else []
        root = os.path.join(os.path.expanduser("~"), ".nbkube", "clusters")
        with contextlib.suppress(OSError):
            candidates += [os.path.join(root, n) for n in sorted(os.listdir(root))]
        for folder in candidates:
            try:
                with open(os.path.join(folder, "pki", "ca.crt"), "rb") as fh:
                    if fh.read() == target.ca_pem:
                        return folder
            except OSError:
                continue
        return None

    # -- where the API server is, and which credential can be made ------------------------------------

    def server_url(self) -> str | None:
        if _is_rest(self.api):
            return str(self.api.target.server)
        return running_api_server(self.folder) if self.folder else None

    def _pki(self) -> ClusterPKI | None:
        return _readable_pki(os.path.join(self.folder, "pki")) if self.folder else None

    def _choose(self, credential: str) -> tuple[str, ClusterPKI | None]:
        if credential not in CREDENTIALS:
            raise BadRequest(f"--credential must be one of {', '.join(CREDENTIALS)}, got {credential!r}")
        pki = self._pki() if credential in ("auto", "certificate") else None
        if credential == "certificate" and pki is None:
            where = os.path.join(self.folder, "pki") if self.folder else "(no cluster folder found)"
            raise BadRequest(f"--credential certificate: the cluster's CA key is not readable here: {where}")
        if credential == "token" and not _is_rest(self.api):
            raise BadRequest(
                "--credential token: a ServiceAccount token is issued by the API server: use --kubeconfig"
            )
        if pki is not None:
            return "certificate", pki
        return ("token", None) if _is_rest(self.api) else ("none", None)

    # -- create -----------------------------------------------------------------------------------------

    def create(
        self,
        name: str,
        *,
        kubeconfig: str | None = None,
        cpu: Any = DEFAULT_CPU,
        memory: Any = DEFAULT_MEMORY,
        pods: Any = DEFAULT_PODS,
        credential: str = "auto",
        pod_security: str = "restricted",
    ) -> TenantResult:
        """Make tenant `name` (see the module docstring); `kubeconfig` defaults to ./NAME.kubeconfig."""
        objs = tenant_objects(name, cpu=cpu, memory=memory, pods=pods, pod_security=pod_security)
        how, pki = self._choose(credential)
        try:
            self.api.get("Namespace", name)
        except NotFound:
            pass
        else:
            raise AlreadyExists(f'namespace "{name}" already exists: tenant {name} not created')
        server = self.server_url()
        if how == "token":
            objs += _service_account_objects(name)
        result = TenantResult(name, server=server)
        made: list[Obj] = []
        try:
            for obj in objs:
                made.append(self.api.create(obj))
                result.objects.append((str(obj["kind"]), str(obj["metadata"]["name"])))
            self._credential(result, how, pki, kubeconfig)
        except BaseException:
            self._undo(made)
            raise
        return result

    def kubeconfig(self, name: str, path: str | None = None, *, credential: str = "auto") -> TenantResult:
        """A (new) kubeconfig for an existing tenant `name`."""
        self._tenant_namespace(name)
        how, pki = self._choose(credential)
        result = TenantResult(name, server=self.server_url())
        made: list[Obj] = []
        try:
            if how == "token":
                for obj in _service_account_objects(name):
                    try:
                        made.append(self.api.create(obj))
                        result.objects.append((str(obj["kind"]), str(obj["metadata"]["name"])))
                    except AlreadyExists:
                        pass
            self._credential(result, how, pki, path)
        except BaseException:
            self._undo(made)
            raise
        if not result.kubeconfig:
            raise BadRequest(result.note)
        return result

    def _credential(self, result: TenantResult, how: str, pki: ClusterPKI | None, path: str | None) -> None:
        name = result.name
        if how == "none":
            if self.folder and not os.path.exists(os.path.join(self.folder, "pki")):
                why = "no API server has served this cluster yet (its CA is made then)"
            else:
                why = "the cluster's CA is not readable here and no API server was given to issue a token"
            result.note = (
                f"no kubeconfig written: {why}; once one runs (nbkube up --api-port 0, or serve(cluster)): "
                f"nbkube tenant kubeconfig {name}"
            )
            return
        if result.server is None:
            result.note = (
                f"no kubeconfig written: no API server runs for this cluster (start one: nbkube up "
                f"--api-port 0, or serve(cluster)); then: nbkube tenant kubeconfig {name}"
            )
            return
        target = os.path.abspath(os.path.expanduser(path or f"{name}.kubeconfig"))
        if how == "certificate":
            assert pki is not None
            cert, key = pki.issue_client_cert(name)
            write_kubeconfig(
                target,
                result.server,
                name,
                ca_pem=pki.ca_pem,
                user=name,
                client_cert_pem=cert,
                client_key_pem=key,
                namespace=name,
            )
            result.credential = f"client certificate CN={name} of the cluster CA"
        else:
            token = self._token(name)
            write_kubeconfig(
                target,
                result.server,
                name,
                ca_pem=self.api.target.ca_pem,
                user=f"system:serviceaccount:{name}:{name}",
                token=token,
                namespace=name,
            )
            hours = MAX_EXPIRATION_SECONDS // 3600
            result.credential = f"token of ServiceAccount {name}/{name}, valid {hours} h"
        result.kubeconfig = target

    def _token(self, name: str) -> str:
        body = {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {"expirationSeconds": MAX_EXPIRATION_SECONDS},
        }
        path = f"/api/v1/namespaces/{name}/serviceaccounts/{name}/token"
        _code, answer = self.api.request("POST", path, body)
        token = ((answer or {}).get("status") or {}).get("token") if isinstance(answer, dict) else None
        if not token:
            raise BadRequest(f"the API server answered the token request for {name}/{name} without a token")
        return str(token)

    def _undo(self, made: Iterable[Obj]) -> None:
        """Delete what a failed create made, newest first (the namespace last)."""
        for obj in reversed(list(made)):
            meta = obj.get("metadata") or {}
            try:
                self.api.delete(str(obj["kind"]), str(meta.get("name")), str(meta.get("namespace") or ""))
            except NotFound:
                continue
            except NbkubeError:
                continue  # the namespace's deletion (last) takes whatever is left with it

    # -- delete / list ----------------------------------------------------------------------------------

    def _tenant_namespace(self, name: str) -> Obj:
        check_tenant_name(name)
        try:
            ns = self.api.get("Namespace", name)
        except NotFound:
            raise NotFound(f"tenant {name!r} not found (no namespace {name})") from None
        if ((ns.get("metadata") or {}).get("labels") or {}).get(TENANT_LABEL) != name:
            raise BadRequest(f"namespace {name!r} is not a tenant's (no label {TENANT_LABEL}={name})")
        return ns

    def delete(self, name: str) -> list[tuple[str, str]]:
        """Remove tenant `name`: its RoleBindings first (access ends now), then the namespace, whose
        deletion takes everything in it (the namespace controller). Returns what was deleted."""
        self._tenant_namespace(name)
        deleted: list[tuple[str, str]] = []
        for binding in self.api.list("RoleBinding", name)[0]:
            binding_name = str(binding["metadata"]["name"])
            try:
                self.api.delete("RoleBinding", binding_name, name)
                deleted.append(("RoleBinding", binding_name))
            except NotFound:
                continue
        self.api.delete("Namespace", name)
        deleted.append(("Namespace", name))
        return deleted

    def list(self) -> list[TenantInfo]:
        """Every tenant (namespaces labelled nbkube.io/tenant), with its quota's hard limits and use."""
        out = []
        for ns in self.api.list("Namespace", label_selector=TENANT_LABEL)[0]:
            name = str(ns["metadata"]["name"])
            hard: dict[str, str] = {}
            used: dict[str, str] = {}
            try:
                quota = self.api.get("ResourceQuota", QUOTA_NAME, name)
                hard = {k: str(v) for k, v in ((quota.get("spec") or {}).get("hard") or {}).items()}
                used = {k: str(v) for k, v in ((quota.get("status") or {}).get("used") or {}).items()}
            except NotFound:
                pass
            out.append(
                TenantInfo(name, str((ns.get("status") or {}).get("phase") or "Active"), hard, used, ns)
            )
        return sorted(out, key=lambda t: t.name)
