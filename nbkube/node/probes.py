"""Container probes (startup, readiness, liveness) as the kubelet runs them, for every runtime that has processes.

Who calls it: the process runtime (`nbkube.node.runtime.process`) from its reaper thread, and any
other runtime that wants the same semantics (the docker runtime may switch to it). Two parts:

- `run_probe(probe, host=..., ports=..., exec_fn=...)` performs one check of a Kubernetes probe
  object (`httpGet`, `tcpSocket` or `exec`) and says whether it passed and why not; the network
  checks only ever go to `host` (the pod's own address), the exec check goes through a callable the
  runtime passes, so this module starts no process itself;
- `ProbeTracker` is the pure timing and threshold state of one probe of one container:
  `initialDelaySeconds`, `periodSeconds`, `successThreshold` and `failureThreshold` decide when the
  next check is due and what the verdict is; it reads no clock, the caller passes `now`.
"""

from __future__ import annotations

import http.client
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from nbkube.api.meta import Obj
from nbkube.errors import BadRequest

__all__ = [
    "ProbeResult",
    "ProbeTracker",
    "ProbeKind",
    "run_probe",
    "probe_port",
    "validate_probe",
    "HANDLERS",
]

ProbeKind = Literal["readiness", "liveness", "startup"]
HANDLERS = ("httpGet", "tcpSocket", "exec")

# (argv, timeout seconds) -> (exit code, output)
ExecFn = Callable[[list[str], float], tuple[int, str]]


@dataclass(frozen=True)
class ProbeResult:
    ok: bool
    message: str = ""  # why it failed, for the container's status message


def _number(probe: Obj, key: str, default: float, minimum: float, where: str) -> float:
    value = probe.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float) or value < minimum:
        raise BadRequest(f"{where}.{key} must be a number >= {minimum:g}, got {value!r}")
    return float(value)


def validate_probe(probe: Any, where: str) -> None:
    """Raise BadRequest naming the field when `probe` cannot be run (checked once, at pod start)."""
    if not isinstance(probe, dict):
        raise BadRequest(f"{where} must be an object")
    handlers = [h for h in HANDLERS if h in probe]
    if len(handlers) != 1:
        raise BadRequest(f"{where} needs exactly one of {', '.join(HANDLERS)}, got {handlers or 'none'}")
    for key, minimum in (
        ("initialDelaySeconds", 0),
        ("periodSeconds", 0.001),
        ("timeoutSeconds", 0.001),
        ("successThreshold", 1),
        ("failureThreshold", 1),
    ):
        _number(probe, key, 0, minimum, where)
    if "exec" in probe and not ((probe["exec"] or {}).get("command")):
        raise BadRequest(f"{where}.exec.command must be a non-empty list")
    if "httpGet" in probe and (probe["httpGet"] or {}).get("port") is None:
        raise BadRequest(f"{where}.httpGet.port is required")
    if "tcpSocket" in probe and (probe["tcpSocket"] or {}).get("port") is None:
        raise BadRequest(f"{where}.tcpSocket.port is required")


def probe_port(value: Any, ports: list[Obj]) -> int:
    """A probe's port: a number, or the name of one of the container's `ports`."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    for port in ports:
        if port.get("name") == value and port.get("containerPort") is not None:
            return int(port["containerPort"])
    raise ValueError(f"port {value!r} is neither a number nor a named port of the container")


def run_probe(
    probe: Obj, *, host: str, ports: list[Obj] | None = None, exec_fn: ExecFn | None = None
) -> ProbeResult:
    """One check of `probe` against the pod at `host`; never raises for a failing target."""
    timeout = float(probe.get("timeoutSeconds") or 1)
    try:
        if "httpGet" in probe:
            return _http_get(probe["httpGet"] or {}, host, ports or [], timeout)
        if "tcpSocket" in probe:
            t = probe["tcpSocket"] or {}
            port = probe_port(t.get("port"), ports or [])
            target = str(t.get("host") or host)
            try:
                with socket.create_connection((target, port), timeout=timeout):
                    return ProbeResult(True)
            except OSError as exc:
                return ProbeResult(False, f"dial tcp {target}:{port}: {exc.strerror or exc}")
        if "exec" in probe:
            if exec_fn is None:
                return ProbeResult(False, "exec probes are not supported by this runtime")
            argv = [str(a) for a in (probe["exec"] or {}).get("command") or []]
            code, output = exec_fn(argv, timeout)
            if code == 0:
                return ProbeResult(True)
            tail = output.strip().splitlines()[-1:] if output.strip() else []
            return ProbeResult(
                False, f"command {argv!r} exited with {code}" + (f": {tail[0]}" if tail else "")
            )
    except ValueError as exc:
        return ProbeResult(False, str(exc))
    return ProbeResult(False, f"probe has none of {', '.join(HANDLERS)}")


def _http_get(h: Obj, host: str, ports: list[Obj], timeout: float) -> ProbeResult:
    port = probe_port(h.get("port"), ports)
    target = str(h.get("host") or host)
    path = str(h.get("path") or "/")
    if not path.startswith("/"):
        path = "/" + path
    scheme = str(h.get("scheme") or "HTTP").upper()
    headers = {"User-Agent": "nbkube-probe/0.1", "Accept": "*/*"}
    headers.update({str(x.get("name")): str(x.get("value")) for x in h.get("httpHeaders") or []})
    conn: http.client.HTTPConnection
    if scheme == "HTTPS":
        import ssl

        # The kubelet does not verify a probed pod's certificate either.
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        conn = http.client.HTTPSConnection(target, port, timeout=timeout, context=ctx)
    else:
        conn = http.client.HTTPConnection(target, port, timeout=timeout)
    try:
        conn.request("GET", path, headers=headers)
        resp = conn.getresponse()
        resp.read(10_240)  # bounded: a probe needs the status, not the body
        if 200 <= resp.status < 400:
            return ProbeResult(True)
        return ProbeResult(False, f"HTTP probe failed with statuscode: {resp.status}")
    except (OSError, http.client.HTTPException) as exc:
        return ProbeResult(False, f"Get http://{target}:{port}{path}: {exc}")
    finally:
        conn.close()


class ProbeTracker:
    """When one probe of one container is due next, and its verdict after the thresholds.

    Readiness starts not ready and turns ready after `successThreshold` successes in a row; it turns
    unready after `failureThreshold` failures in a row. Liveness starts healthy and turns unhealthy
    after `failureThreshold` failures in a row (the runtime then kills and restarts the container).
    Startup starts not passed and passes at its first success; until then the runtime runs no
    other probe, and `failureThreshold` failures in a row (`failures`) kill the container.
    `first_success_period`, when given, replaces the period until the first success, so a fresh
    container is seen ready moments after it starts serving rather than up to a period later.
    """

    def __init__(
        self,
        probe: Obj,
        kind: ProbeKind,
        started_at: float,
        *,
        first_success_period: float | None = None,
    ) -> None:
        self.probe = probe
        self.kind = kind
        self.initial_delay = float(probe.get("initialDelaySeconds") or 0)
        self.period = float(probe.get("periodSeconds") or 10)
        self.success_threshold = int(probe.get("successThreshold") or 1)
        self.failure_threshold = int(probe.get("failureThreshold") or 3)
        self.first_success_period = first_success_period
        self.next_at = started_at + self.initial_delay
        self.successes = 0
        self.failures = 0
        self.ever_succeeded = False
        self.passing = kind == "liveness"
        self.last_message = ""

    def due(self, now: float) -> bool:
        return now >= self.next_at

    def record(self, result: ProbeResult, now: float) -> bool:
        """Count one result taken at `now`; returns the verdict (ready / alive)."""
        if result.ok:
            self.successes, self.failures = self.successes + 1, 0
            self.ever_succeeded = True
            self.last_message = ""
            if self.successes >= self.success_threshold:
                self.passing = True
        else:
            self.successes, self.failures = 0, self.failures + 1
            self.last_message = result.message
            if self.failures >= self.failure_threshold:
                self.passing = False
        period = self.period
        if self.first_success_period is not None and not self.ever_succeeded:
            period = min(period, self.first_success_period)
        self.next_at = now + period
        return self.passing
