"""Userspace proxy throughput: 1 KiB HTTP responses through `UserspaceProxy` beside a direct connection.

Target: >= 0.5x of direct. The set-up mirrors the embedded mode: the backend pod is a
separate process (the host's busybox httpd serving a 1 KiB file on a loopback pod address), the
proxy runs in this process (as it runs in the notebook's kernel), and the client is another
process, as curl or a browser would be. The client makes one connection per request (busybox httpd
closes after each response anyway), the hardest case for a proxy, which pays a connect to the
backend per request. Loopback only; bounded by count and time.

    python benchmarks/userspace_proxy.py [--count 3000] [--seconds 5]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from common import Row  # noqa: E402

from nbkube.node.proxy.rules import Backend, ServicePortRule  # noqa: E402
from nbkube.node.proxy.userspace import UserspaceProxy  # noqa: E402

POD_IP = "127.244.9.2"
CLUSTER_IP = "127.96.9.10"

CLIENT = r"""
import json, socket, sys, time
host, port, count, seconds, keepalive = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), sys.argv[5] == "1"
req = b"GET /index.html HTTP/1.1\r\nHost: x\r\n" + (b"" if keepalive else b"Connection: close\r\n") + b"\r\n"
def read_response(s, buf):
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(65536)
        if not chunk: raise ConnectionError("closed")
        buf += chunk
    head, _, rest = buf.partition(b"\r\n\r\n")
    length = int([l.split(b":")[1] for l in head.split(b"\r\n") if l.lower().startswith(b"content-length")][0])
    while len(rest) < length:
        chunk = s.recv(65536)
        if not chunk: raise ConnectionError("short body")
        rest += chunk
    return rest[length:]
done = 0
t0 = time.perf_counter()
if keepalive:
    s = socket.create_connection((host, port), timeout=5); buf = b""
    while done < count and time.perf_counter() - t0 < seconds:
        s.sendall(req); buf = read_response(s, buf); done += 1
    s.close()
else:
    while done < count and time.perf_counter() - t0 < seconds:
        with socket.create_connection((host, port), timeout=5) as s:
            s.sendall(req); read_response(s, b""); done += 1
print(json.dumps({"rate": done / (time.perf_counter() - t0), "done": done}))
"""


def _free_port(ip: str) -> int:
    with socket.socket() as s:
        s.bind((ip, 0))
        return int(s.getsockname()[1])


def _client_rate(host: str, port: int, count: int, seconds: float, keepalive: bool) -> float:
    out = subprocess.run(
        [sys.executable, "-c", CLIENT, host, str(port), str(count), str(seconds), "1" if keepalive else "0"],
        capture_output=True,
        text=True,
        timeout=seconds + 30,
        check=True,
    )
    return float(json.loads(out.stdout)["rate"])


def _wait_listening(ip: str, port: int, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection((ip, port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {ip}:{port}")


def measure(args: argparse.Namespace) -> list[tuple[str, float, float]]:
    busybox = shutil.which("busybox")
    if not busybox:
        raise RuntimeError("busybox not found (apt-get install busybox-static)")
    www = tempfile.mkdtemp(prefix="nbkube-bench-www-")
    with open(os.path.join(www, "index.html"), "wb") as f:
        f.write(b"x" * 1024)
    backend_port = _free_port(POD_IP)
    httpd = subprocess.Popen([busybox, "httpd", "-f", "-p", f"{POD_IP}:{backend_port}", "-h", www])
    proxy = UserspaceProxy()
    try:
        _wait_listening(POD_IP, backend_port)
        port = _free_port(CLUSTER_IP)
        rule = ServicePortRule(
            service="default/bench",
            port_name="",
            protocol="TCP",
            cluster_ip=CLUSTER_IP,
            port=port,
            node_port=None,
            session_affinity=False,
            affinity_timeout=0,
            backends=(Backend(POD_IP, backend_port, "default/bench-0"),),
        )
        errors = proxy.sync([rule], [])
        if errors:
            raise RuntimeError(f"proxy could not listen: {errors}")
        rows = []
        # busybox httpd closes after every response (no keep-alive), so each request is a new connection.
        for keepalive in (False,):
            _client_rate(POD_IP, backend_port, 200, 1.0, keepalive)  # warm up both paths
            _client_rate(CLUSTER_IP, port, 200, 1.0, keepalive)
            direct = _client_rate(POD_IP, backend_port, args.count, args.seconds, keepalive)
            proxied = _client_rate(CLUSTER_IP, port, args.count, args.seconds, keepalive)
            rows.append(("kept-open connection" if keepalive else "new connection each", proxied, direct))
    finally:
        proxy.stop()
        httpd.terminate()
        httpd.wait(5)
        shutil.rmtree(www, ignore_errors=True)
    return rows


def rows(quick: bool = False) -> list[Row]:
    args = argparse.Namespace(count=500 if quick else 3000, seconds=2.0 if quick else 5.0)
    label, proxied, direct = measure(args)[0]
    return [Row("userspace proxy, 1 KiB HTTP, new connection each", proxied, "req/s",
                "busybox httpd direct, same client", direct, "same-run", note=f"up to {args.count} requests "
                f"or {args.seconds:g} s each")]  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--count", type=int, default=3000)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    rows = measure(args)
    print(
        f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}; backend: busybox httpd, 1 KiB body"
    )
    print(f"{'1 KiB responses (req/s)':28} {'proxy':>9} {'direct':>9} {'ratio':>7}  target")
    for label, proxied, direct in rows:
        print(f"{label:28} {proxied:9.0f} {direct:9.0f} {proxied / direct:6.2f}x  >= 0.5x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
