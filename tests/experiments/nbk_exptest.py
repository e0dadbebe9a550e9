"""Shared pieces for the experiments tests: a local HTTP server that names itself, and a sim cluster."""

from __future__ import annotations

import http.server
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from nbkube import examples

EXAMPLES = Path(examples.folder("rootless"))


@contextmanager
def name_server(names: list[str], fail: Callable[[], bool] = lambda: False) -> Iterator[tuple[str, int]]:
    """A loopback HTTP server answering each GET with the next name (503 while `fail()`)."""
    counter = iter(range(10**9))

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            code, body = (503, "down") if fail() else (200, names[next(counter) % len(names)])
            data = (body + "\n").encode()
            self.send_response(code)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            return

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield "127.0.0.1", int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def wait_for(fn: Callable[[], Any], timeout: float = 15.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = fn()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def ready_count(api: Any, selector: str = "app=web") -> int:
    pods, _ = api.list("Pod", "default", label_selector=selector)
    return sum(
        1
        for p in pods
        if not p["metadata"].get("deletionTimestamp")
        and any(
            c.get("type") == "Ready" and c.get("status") == "True"
            for c in (p.get("status") or {}).get("conditions") or []
        )
    )
