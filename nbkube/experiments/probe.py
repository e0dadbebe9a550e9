"""A load probe: HTTP GETs at a bounded rate against one (host, port), every request recorded.

Who calls it: the failover and rollout experiments (they start one before acting and stop it after),
`nbkube demo` (round robin through the service) and the notebooks. Each request opens a fresh
connection, so a round-robin proxy picks a backend per request; the demo pods answer with their own
name, which is how a record says which pod answered. The thread never runs past `duration`.
"""

from __future__ import annotations

import http.client
import threading
import time
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas

__all__ = ["Probe", "ProbeRecord", "PROBE_COLUMNS", "probe_once", "round_robin"]

PROBE_COLUMNS = ["time", "ok", "latency", "status", "pod", "error"]
_MAX_BODY = 256


@dataclass(frozen=True)
class ProbeRecord:
    time: float  # epoch seconds when the request was sent
    ok: bool  # HTTP 2xx within the timeout
    latency: float  # seconds until the answer (or the failure)
    status: int  # HTTP status, 0 when there was no HTTP answer
    pod: str  # first line of the body: the answering pod's name in the demo
    error: str  # why it failed ("" when ok)


def probe_once(host: str, port: int, *, path: str = "/", timeout: float = 1.0) -> ProbeRecord:
    """One GET on a fresh connection; never raises."""
    started = time.time()
    t0 = time.perf_counter()
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", path, headers={"Connection": "close"})
        resp = conn.getresponse()
        body = resp.read(_MAX_BODY).decode("utf-8", "replace")
        ok = 200 <= resp.status < 300
        pod = body.strip().splitlines()[0].strip() if body.strip() else ""
        return ProbeRecord(
            started, ok, time.perf_counter() - t0, resp.status, pod, "" if ok else f"HTTP {resp.status}"
        )
    except (OSError, http.client.HTTPException) as exc:
        return ProbeRecord(started, False, time.perf_counter() - t0, 0, "", type(exc).__name__ + f": {exc}")
    finally:
        conn.close()


class Probe:
    """Sends GETs to (host, port) at `rate` per second for at most `duration` seconds, on one thread.

    `start()` / `stop()` (or a `with` block); `records` and `df` can be read at any time."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        rate: float = 20.0,
        duration: float = 120.0,
        timeout: float = 0.5,
        path: str = "/",
    ):
        if not 0 < rate <= 1000:
            raise ValueError(f"probe rate must be in (0, 1000] requests per second, got {rate!r}")
        if not 0 < duration <= 3600:
            raise ValueError(f"probe duration must be in (0, 3600] seconds, got {duration!r}")
        if not 0 < timeout <= 30:
            raise ValueError(f"probe timeout must be in (0, 30] seconds, got {timeout!r}")
        self.host, self.port = host, int(port)
        self.rate, self.duration, self.timeout, self.path = rate, duration, timeout, path
        self._records: list[ProbeRecord] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:
        return f"Probe({self.host}:{self.port}, {self.rate:g}/s, {len(self._records)} requests)"

    def start(self) -> Probe:
        if self._thread is not None:
            raise RuntimeError("a Probe runs once; make a new one")
        self._thread = threading.Thread(target=self._run, name=f"probe-{self.host}:{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self.timeout + 5.0)

    def __enter__(self) -> Probe:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        interval = 1.0 / self.rate
        t_start = time.monotonic()
        deadline = t_start + self.duration
        n = 0
        while not self._stop.is_set():
            # paced against the start time, so a slow answer does not lower the long-run rate
            next_at = t_start + n * interval
            now = time.monotonic()
            if next_at >= deadline:
                return
            if next_at > now and self._stop.wait(next_at - now):
                return
            rec = probe_once(self.host, self.port, path=self.path, timeout=self.timeout)
            with self._lock:
                self._records.append(rec)
            n += 1
            # after a long timeout, skip the slots we missed instead of bursting to catch up
            n = max(n, int((time.monotonic() - t_start) / interval))

    @property
    def records(self) -> list[ProbeRecord]:
        with self._lock:
            return list(self._records)

    def ok_since(self, t: float) -> bool:
        """Has a request sent at or after epoch time `t` succeeded?"""
        with self._lock:
            return any(r.ok and r.time >= t for r in reversed(self._records))

    @property
    def df(self) -> pandas.DataFrame:
        return records_dataframe(self.records)


def records_dataframe(records: list[ProbeRecord]) -> pandas.DataFrame:
    import pandas as pd

    df = pd.DataFrame([asdict(r) for r in records], columns=PROBE_COLUMNS)
    df["time"] = pd.to_datetime(df["time"].astype(float), unit="s", utc=True)
    return df


def round_robin(host: str, port: int, requests: int = 50, *, timeout: float = 1.0) -> pandas.DataFrame:
    """`requests` GETs one after another; a table of how many each pod answered (pod, requests, share)."""
    import pandas as pd

    if not 0 < requests <= 10_000:
        raise ValueError(f"requests must be in 1..10000, got {requests!r}")
    recs = [probe_once(host, port, timeout=timeout) for _ in range(requests)]
    names = [r.pod if r.ok else "(failed)" for r in recs]
    counts = pd.Series(names, dtype=str).value_counts().sort_index()
    out = pd.DataFrame({"pod": counts.index, "requests": counts.to_numpy()})
    out["share"] = (out["requests"] / requests).round(3)
    return out
