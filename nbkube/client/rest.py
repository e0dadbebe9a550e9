"""The registry's verbs over the Kubernetes REST API: the client layer's second transport.

A notebook's own cluster talks to its Registry in process; everything else (the CLI with
`--kubeconfig`, a tenant, a process on another machine) talks to the API server over HTTPS with the
credentials of a kubeconfig. `RestClient` offers the same verbs the CLI and the maintenance helpers
use on a Registry (get, list, create, update, update_status, patch, mutate, delete, apply, watch),
so the code above does not care which transport it holds. Errors come back as the same nbkube
errors the registry raises, rebuilt from the server's Status.
"""

from __future__ import annotations

import builtins
import contextlib
import copy
import http.client
import json
import queue
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

from nbkube.api import kinds
from nbkube.api.defaults import apply_defaults
from nbkube.api.kinds import KindInfo
from nbkube.api.meta import Obj
from nbkube.api.validation import validate
from nbkube.client.kubeconfig import KubeconfigError, KubeconfigTarget
from nbkube.errors import (
    AlreadyExists,
    BadRequest,
    Conflict,
    Expired,
    FieldError,
    Forbidden,
    Invalid,
    NbkubeError,
    NotFound,
    StoreUnavailable,
    TooLarge,
    TooManyRequests,
    Unauthorized,
)
from nbkube.security.pki import client_ssl_context

__all__ = ["RestClient", "RestWatch", "ssl_context_for"]

_RETRIES = 10
_ERRORS: dict[str, type[NbkubeError]] = {
    "NotFound": NotFound,
    "AlreadyExists": AlreadyExists,
    "Conflict": Conflict,
    "Forbidden": Forbidden,
    "Unauthorized": Unauthorized,
    "Expired": Expired,
    "Gone": Expired,
    "ServiceUnavailable": StoreUnavailable,
    "RequestEntityTooLarge": TooLarge,
}


def ssl_context_for(target: KubeconfigTarget) -> ssl.SSLContext:
    """TLS as the kubeconfig says: trust the cluster's CA only, present the client certificate
    when there is one."""
    if target.ca_pem is None:
        raise KubeconfigError(
            f"kubeconfig {target.path}: context {target.context!r} gives no certificate-authority "
            "for its https server"
        )
    return client_ssl_context(target.ca_pem, target.cert_pem, target.key_pem)


def _error(code: int, body: Any) -> NbkubeError:
    """The nbkube error a failed response's Status stands for."""
    if not isinstance(body, dict):
        return BadRequest(f"the API server answered {code}: {str(body).strip()[:200]}")
    reason = str(body.get("reason") or "")
    message = str(body.get("message") or f"the API server answered {code}")
    if reason == "Invalid":
        details = body.get("details") or {}
        causes = details.get("causes") or []
        errors = [FieldError(str(c.get("field", "")), str(c.get("message", ""))) for c in causes]
        return Invalid(errors or [FieldError("", message)], kind=str(details.get("kind", "")), name=str(details.get("name", "")))
    if reason == "TooManyRequests":
        causes = (body.get("details") or {}).get("causes") or []
        return TooManyRequests(message, [c for c in causes if isinstance(c, dict)])
    cls = _ERRORS.get(reason)
    if cls is not None:
        return cls(message)
    err = BadRequest(message)
    err.code = code
    return err


class RestClient:
    """Registry-shaped access to a cluster through its API server (see the module docstring)."""

    def __init__(self, target: KubeconfigTarget, *, timeout: float = 30.0):
        self.target = target
        url = urlsplit(target.server)
        self._https = url.scheme == "https"
        self._host = url.hostname or "127.0.0.1"
        self._port = url.port or (443 if self._https else 80)
        self._ssl = ssl_context_for(target) if self._https else None
        self._timeout = timeout
        self._local = threading.local()  # one keep-alive connection per thread
        self.namespace = target.namespace

    def __repr__(self) -> str:
        return f"RestClient({self.target.server}, context={self.target.context!r})"

    # -- HTTP ------------------------------------------------------------------------------------------

    def _connect(self, timeout: float | None) -> http.client.HTTPConnection:
        if self._https:
            return http.client.HTTPSConnection(self._host, self._port, timeout=timeout, context=self._ssl)
        return http.client.HTTPConnection(self._host, self._port, timeout=timeout)

    def _headers(self, content_type: str | None) -> dict[str, str]:
        headers = {"Accept": "application/json", "User-Agent": "nbkube"}
        if content_type:
            headers["Content-Type"] = content_type
        if self.target.token:
            headers["Authorization"] = f"Bearer {self.target.token}"
        return headers

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        query: dict[str, str] | None = None,
        content_type: str = "application/json",
    ) -> tuple[int, Any]:
        """One request; the decoded JSON answer (raises the nbkube error of a failure)."""
        url = path + (f"?{urlencode(query)}" if query else "")
        data = None if body is None else json.dumps(body).encode()
        for attempt in (1, 2):
            conn = getattr(self._local, "conn", None)
            if conn is None:
                conn = self._local.conn = self._connect(self._timeout)
            try:
                conn.request(method, url, body=data, headers=self._headers(content_type if data else None))
                resp = conn.getresponse()
                raw = resp.read()
            except (http.client.HTTPException, ConnectionError) as e:
                # a kept-alive connection the server closed meanwhile: one fresh try
                conn.close()
                self._local.conn = None
                if attempt == 2:
                    raise StoreUnavailable(f"the API server at {self.target.server} did not answer: {e}") from None
                continue
            except ssl.SSLError as e:
                conn.close()
                self._local.conn = None
                raise Unauthorized(f"TLS with {self.target.server} failed: {e.reason or e}") from None
            except OSError as e:
                conn.close()
                self._local.conn = None
                raise StoreUnavailable(
                    f"the API server at {self.target.server} cannot be reached: {e.strerror or e}"
                ) from None
            decoded: Any = raw.decode(errors="replace")
            if (resp.getheader("Content-Type") or "").startswith("application/json") and raw:
                decoded = json.loads(raw)
            if resp.status >= 400:
                raise _error(resp.status, decoded)
            return resp.status, decoded
        raise AssertionError("unreachable")

    # -- paths -----------------------------------------------------------------------------------------

    @staticmethod
    def path(info: KindInfo, namespace: str = "", name: str = "", subresource: str = "") -> str:
        base = "/api/v1" if info.api_version == "v1" else f"/apis/{info.api_version}"
        parts = [base]
        if info.namespaced and namespace:
            parts.append(f"namespaces/{quote(namespace, safe='')}")
        parts.append(info.plural)
        if name:
            parts.append(quote(name, safe=""))
        if subresource:
            parts.append(subresource)
        return "/".join(parts)

    @staticmethod
    def _info_of(obj: Obj) -> KindInfo:
        if not isinstance(obj, dict):
            raise BadRequest(f"object must be a mapping, got {type(obj).__name__}")
        return kinds.for_manifest(str(obj.get("apiVersion", "")), str(obj.get("kind", "")))

    def _ns(self, info: KindInfo, obj_or_ns: Obj | str) -> str:
        if not info.namespaced:
            return ""
        if isinstance(obj_or_ns, str):
            return obj_or_ns or self.namespace
        return str((obj_or_ns.get("metadata") or {}).get("namespace") or self.namespace)

    # -- the registry's verbs --------------------------------------------------------------------------

    def get(self, kind: str, name: str, namespace: str = "") -> Obj:
        info = kinds.lookup(kind)
        return self.request("GET", self.path(info, self._ns(info, namespace), name))[1]

    def list(
        self,
        kind: str,
        namespace: str = "",
        *,
        label_selector: Any = None,
        field_selector: dict[str, str] | None = None,
    ) -> tuple[builtins.list[Obj], str]:
        info = kinds.lookup(kind)
        query: dict[str, str] = {}
        if label_selector:
            query["labelSelector"] = (
                label_selector
                if isinstance(label_selector, str)
                else ",".join(f"{k}={v}" for k, v in dict(label_selector).items())
            )
        if field_selector:
            query["fieldSelector"] = ",".join(f"{k}={v}" for k, v in field_selector.items())
        body = self.request("GET", self.path(info, namespace if info.namespaced else ""), query=query)[1]
        return list(body.get("items") or []), str((body.get("metadata") or {}).get("resourceVersion", ""))

    def create(self, obj: Obj) -> Obj:
        info = self._info_of(obj)
        return self.request("POST", self.path(info, self._ns(info, obj)), obj)[1]

    def update(self, obj: Obj) -> Obj:
        info = self._info_of(obj)
        name = str((obj.get("metadata") or {}).get("name", ""))
        return self.request("PUT", self.path(info, self._ns(info, obj), name), obj)[1]

    def update_status(self, obj: Obj) -> Obj:
        info = self._info_of(obj)
        name = str((obj.get("metadata") or {}).get("name", ""))
        return self.request("PUT", self.path(info, self._ns(info, obj), name, "status"), obj)[1]

    def patch(
        self, kind: str, name: str, namespace: str, patch: dict[str, Any], *, status: bool = False
    ) -> Obj:
        """JSON merge patch (RFC 7386); the server retries conflicts unless it pins a resourceVersion."""
        info = kinds.lookup(kind)
        path = self.path(info, self._ns(info, namespace), name, "status" if status else "")
        return self.request("PATCH", path, patch, content_type="application/merge-patch+json")[1]

    def mutate(
        self, kind: str, name: str, namespace: str, change: Callable[[Obj], Obj], *, status: bool = False
    ) -> Obj:
        """Read, change, write at the read resourceVersion; again on Conflict (as Registry.mutate)."""
        for attempt in range(_RETRIES):
            new = change(self.get(kind, name, namespace))
            try:
                return self.update_status(new) if status else self.update(new)
            except Conflict:
                if attempt == _RETRIES - 1:
                    raise
        raise AssertionError("unreachable")

    def delete(
        self,
        kind: str,
        name: str,
        namespace: str = "",
        *,
        resource_version: str | None = None,
        propagation: str = "Background",
    ) -> Obj:
        info = kinds.lookup(kind)
        options: dict[str, Any] = {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": propagation}
        if resource_version:
            options["preconditions"] = {"resourceVersion": resource_version}
        return self.request("DELETE", self.path(info, self._ns(info, namespace), name), options)[1]

    def evict(self, name: str, namespace: str = "", *, dry_run: bool = False) -> None:
        """POST pods/NAME/eviction: delete the pod if its PodDisruptionBudget allows (else
        TooManyRequests naming the budget), as `Registry.evict` does in process."""
        info = kinds.lookup("Pod")
        ns = self._ns(info, namespace)
        body: dict[str, Any] = {
            "apiVersion": "policy/v1",
            "kind": "Eviction",
            "metadata": {"name": name, "namespace": ns},
        }
        if dry_run:
            body["deleteOptions"] = {"dryRun": ["All"]}
        self.request("POST", self.path(info, ns, name, "eviction"), body)

    def apply(self, objs: builtins.list[Obj]) -> builtins.list[tuple[Obj, str]]:
        """`kubectl apply` of every object: all validated here first (nothing is sent when one is
        invalid), then each applied by the server (application/apply-patch+yaml) as field manager
        "nbkube" with `force`: the manifest wins over other managers' values, as the in-process
        Registry.apply does (kubectl's `apply --server-side --force-conflicts`)."""
        errors: builtins.list[FieldError] = []
        for i, raw in enumerate(objs, start=1):
            try:
                self._info_of(raw)
                checked = copy.deepcopy(raw)
                apply_defaults(checked)
                errors.extend(
                    FieldError(f"doc {i}: {e.path}" if e.path else f"doc {i}", e.message) for e in validate(checked)
                )
            except BadRequest as e:
                errors.append(FieldError(f"doc {i}", str(e)))
        if errors:
            raise Invalid(errors)
        results: builtins.list[tuple[Obj, str]] = []
        for obj in objs:
            info = self._info_of(obj)
            name = str((obj.get("metadata") or {}).get("name", ""))
            path = self.path(info, self._ns(info, obj), name)
            try:
                before = str(self.request("GET", path)[1]["metadata"].get("resourceVersion", ""))
            except NotFound:
                before = ""
            code, stored = self.request(
                "PATCH", path, obj, query={"fieldManager": "nbkube", "force": "true"}, content_type="application/apply-patch+yaml"
            )
            rv = str(stored["metadata"].get("resourceVersion", ""))
            action = "created" if code == 201 or not before else "unchanged" if rv == before else "configured"
            results.append((stored, action))
        return results

    def watch(
        self,
        kind: str,
        namespace: str = "",
        *,
        resource_version: str = "",
        label_selector: Any = None,
    ) -> RestWatch:
        info = kinds.lookup(kind)
        query = {"watch": "true", "allowWatchBookmarks": "false"}
        if resource_version:
            query["resourceVersion"] = resource_version
        if label_selector:
            query["labelSelector"] = str(label_selector)
        conn = self._connect(None)
        conn.request("GET", f"{self.path(info, namespace)}?{urlencode(query)}", headers=self._headers(None))
        resp = conn.getresponse()
        if resp.status >= 400:
            raw = resp.read()
            conn.close()
            raise _error(resp.status, json.loads(raw) if raw.startswith(b"{") else raw.decode())
        return RestWatch(conn, resp, resource_version)

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None


class _Event:
    def __init__(self, type: str, obj: Obj):
        self.type = type
        self.object = obj


class RestWatch:
    """A watch stream read by a thread into a queue: `next(timeout)`, iteration and `cancel()` as a
    RegistryWatch offers them."""

    def __init__(self, conn: http.client.HTTPConnection, resp: http.client.HTTPResponse, rv: str):
        self._conn = conn
        self._resp = resp
        self._q: queue.SimpleQueue[_Event | BaseException | None] = queue.SimpleQueue()
        self.resource_version = rv
        self.cancelled = False
        threading.Thread(target=self._read, name="nbkube-rest-watch", daemon=True).start()

    def _read(self) -> None:
        try:
            for line in self._resp:
                if not line.strip():
                    continue
                event = json.loads(line)
                obj = event.get("object") or {}
                if event.get("type") == "ERROR":
                    self._q.put(_error(int(obj.get("code") or 500), obj))
                    break
                if event.get("type") == "BOOKMARK":
                    continue
                self._q.put(_Event(str(event.get("type")), obj))
        except (OSError, ValueError, http.client.HTTPException) as e:
            if not self.cancelled:
                self._q.put(StoreUnavailable(f"the watch stream broke: {e}"))
        finally:
            self._conn.close()  # here, by the reader: closing it under a blocked read races
        self._q.put(None)

    def next(self, timeout: float | None = None) -> _Event | None:
        if self.cancelled:
            return None
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            item = self._q.get(timeout=None if deadline is None else max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            return None
        if item is None:
            self._q.put(None)
            return None
        if isinstance(item, BaseException):
            raise item
        self.resource_version = str((item.object.get("metadata") or {}).get("resourceVersion", ""))
        return item

    def __iter__(self) -> Iterator[_Event]:
        while True:
            event = self.next(None)
            if event is None:
                return
            yield event

    def cancel(self) -> None:
        self.cancelled = True
        sock = self._conn.sock
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(2)  # wakes the reader thread blocked in recv; it closes the rest
