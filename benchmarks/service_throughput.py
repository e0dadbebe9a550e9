"""Requests per second through a Service (ClusterIP and NodePort, iptables mode) beside the pod's own IP.

Target: >= 0.9x of direct. Three Docker nodes, one busybox httpd pod serving a 1 KiB file
(one backend, so every path ends at the same server), and a client process that opens a new
connection per request. ClusterIP and the pod IP are measured from inside a node's network
namespace, where service addresses are routed; the NodePort from the host, as a browser would.
Needs root and dockerd. Loopback and this run's own namespaces only; bounded by count and time.

    python benchmarks/service_throughput.py [--count 2000] [--seconds 5]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from common import Row, require_docker, start_cluster  # noqa: E402

MANIFESTS = """
apiVersion: v1
kind: ReplicationController
metadata: {name: bench-web}
spec:
  replicas: 1
  selector: {app: bench-web}
  template:
    metadata: {labels: {app: bench-web}}
    spec:
      containers:
      - name: web
        image: busybox
        command: ["sh", "-c", "mkdir -p /www && head -c 1024 /dev/zero | tr '\\\\0' x > /www/index.html && exec httpd -f -p 80 -h /www"]
        readinessProbe: {tcpSocket: {port: 80}, periodSeconds: 1}
---
apiVersion: v1
kind: Service
metadata: {name: bench-web}
spec:
  type: NodePort
  selector: {app: bench-web}
  ports: [{port: 8000, targetPort: 80, nodePort: 30080}]
"""

CLIENT = r"""
import socket, sys, time
host, port, count, seconds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
req = b"GET /index.html HTTP/1.0\r\nHost: x\r\n\r\n"
done, t0 = 0, time.perf_counter()
while done < count and time.perf_counter() - t0 < seconds:
    with socket.create_connection((host, port), timeout=5) as s:
        s.sendall(req)
        while s.recv(65536):
            pass
    done += 1
print(done / (time.perf_counter() - t0))
"""


def rate(netns: str | None, host: str, port: int, count: int, seconds: float) -> float:
    cmd = ([] if netns is None else ["ip", "netns", "exec", netns]) + [
        sys.executable,
        "-c",
        CLIENT,
        host,
        str(port),
        str(count),
        str(seconds),
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=seconds + 60)
    return float(out.stdout.strip())


def measure(args: argparse.Namespace) -> dict[str, float]:
    with (
        tempfile.TemporaryDirectory() as data,
        start_cluster(nodes=3, runtime="docker", store="memory", data_dir=data, name="tput") as cluster,
    ):
        cluster.apply(MANIFESTS)
        deadline = time.monotonic() + 60
        while True:
            eps = cluster.api.list("Endpoints", "default")[0]
            addrs = [
                a
                for e in eps
                if e["metadata"]["name"] == "bench-web"
                for s in e.get("subsets") or []
                for a in s.get("addresses") or []
            ]
            if addrs or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        if not addrs:
            raise RuntimeError("the benchmark pod did not become ready")
        time.sleep(1.0)  # let every node's proxy apply the endpoint
        pod_ip = addrs[0]["ip"]
        cluster_ip = cluster.api.get("Service", "bench-web", "default")["spec"]["clusterIP"]
        netns = cluster.kits["node-1"].net.netns
        node_ip = cluster.node_addresses()["node-2"]
        for target in ((netns, pod_ip, 80), (netns, cluster_ip, 8000), (None, node_ip, 30080)):
            rate(*target, 100, 1.0)  # warm up every path
        direct = rate(netns, pod_ip, 80, args.count, args.seconds)
        via_cluster_ip = rate(netns, cluster_ip, 8000, args.count, args.seconds)
        direct_host = rate(None, pod_ip, 80, args.count, args.seconds)
        via_node_port = rate(None, node_ip, 30080, args.count, args.seconds)
    return {"direct": direct, "via_cluster_ip": via_cluster_ip, "direct_host": direct_host,
            "via_node_port": via_node_port}  # fmt: skip


def rows(quick: bool = False) -> list[Row]:
    require_docker()
    args = argparse.Namespace(count=300 if quick else 2000, seconds=1.5 if quick else 5.0)
    m = measure(args)
    note = f"up to {args.count} requests or {args.seconds:g} s each; a new connection per request"
    return [
        Row("Service ClusterIP (iptables), 1 KiB HTTP from a node", m["via_cluster_ip"], "req/s",
            "the pod IP direct, same client", m["direct"], "same-run", note=note),
        Row("Service NodePort (iptables), 1 KiB HTTP from the host", m["via_node_port"], "req/s",
            "the pod IP direct from the host", m["direct_host"], "same-run", note=note),
    ]  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    require_docker()
    m = measure(args)
    direct, via_cluster_ip, direct_host, via_node_port = (
        m["direct"],
        m["via_cluster_ip"],
        m["direct_host"],
        m["via_node_port"],
    )
    print(f"machine: {os.cpu_count()} cores; 1 KiB over HTTP/1.0, a new connection per request")
    print(f"{'path':40} {'req/s':>8} {'direct':>8} {'ratio':>7}  target")
    print(
        f"{'ClusterIP:8000 from node-1':40} {via_cluster_ip:8.0f} {direct:8.0f} {via_cluster_ip / direct:6.2f}x  >= 0.9x"
    )
    print(
        f"{'NodePort 30080 of node-2 from the host':40} {via_node_port:8.0f} {direct_host:8.0f} {via_node_port / direct_host:6.2f}x  >= 0.9x"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
