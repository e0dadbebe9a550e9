"""Real nodes and pods without Docker, for the network and proxy tests and benchmarks (root).

A "pod" here is a network namespace `nbkp-<name>` wired in by `BridgeNetwork.attach_pod` and running
`busybox httpd` that serves the pod's name at `/` and the client's address at `/cgi-bin/ip`, which
is all the article's scenario needs to check the three rules of the pod network and the proxy.
Callers: tests/node/network, tests/node/proxy/test_iptables.py, benchmarks/proxy.py. `close()`
removes every process, namespace and link it made, also after a failure half-way.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from nbkube.node.network.base import NetworkError
from nbkube.node.network.bridge import BridgeNetwork, run

__all__ = ["LabPod", "PodLab", "lab_available"]

BUSYBOX = shutil.which("busybox") or "/bin/busybox"
# httpd listens dual-stack, so an IPv4 client shows as [::ffff:a.b.c.d]: print the plain address.
LAB_LOCK = "/run/lock/nbkube-podlab.lock"
_CGI = (
    '#!{bb} sh\na="${{REMOTE_ADDR#"[::ffff:"}}"\necho "Content-Type: text/plain"\necho\necho "${{a%"]"}}"\n'
)


def lab_available() -> str | None:
    """None when the lab can run here, else why not (for pytest skip reasons)."""
    if os.geteuid() != 0:
        return "needs root (network namespaces, veths, iptables)"
    for tool in ("ip", "nsenter", "iptables-restore"):
        if not shutil.which(tool):
            return f"{tool} is not installed"
    if not os.path.exists(BUSYBOX):
        return "busybox (busybox-static) is not installed"
    probe = f"nbk-probe-{os.getpid()}"
    if subprocess.run(["ip", "netns", "add", probe], capture_output=True).returncode:
        return "`ip netns add` does not work here"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return None


@dataclass
class LabPod:
    name: str
    node: str
    netns: str
    ip: str
    proc: subprocess.Popen[bytes] | None = None


class PodLab:
    """Nodes and pods for one test module or benchmark; one lab at a time on a host (a file lock),
    because labs share the host bridge and the address plan (node N is 10.240.0.(N+1) everywhere)."""

    def __init__(self, workdir: str | os.PathLike[str], lock_timeout: float = 180.0) -> None:
        self.workdir = Path(workdir)
        self._lock_fh = open(LAB_LOCK, "a")  # noqa: SIM115 - held until close()
        deadline = time.monotonic() + lock_timeout
        while True:
            try:
                fcntl.flock(self._lock_fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    self._lock_fh.close()
                    raise NetworkError(
                        f"another PodLab held {LAB_LOCK} for more than {lock_timeout}s"
                    ) from None
                time.sleep(0.1)
        self.nodes: dict[str, BridgeNetwork] = {}
        self.pods: dict[str, LabPod] = {}

    def add_node(self, name: str, index: int) -> BridgeNetwork:
        net = BridgeNetwork(name, index, self.workdir / "state")
        self.nodes[name] = net
        net.setup_node()
        peers = {n: (b.node_ip, b.pod_cidr) for n, b in self.nodes.items()}
        for other in self.nodes.values():
            other.set_routes(peers)
        return net

    def add_pod(self, node: str, name: str) -> LabPod:
        netns = f"nbkp-{name}"
        if os.path.exists(f"/var/run/netns/{netns}"):
            # Left by a lab that was killed before its cleanup (we hold the lab lock, so it is
            # no one's now): its httpd and namespace go first.
            for pid in run(["ip", "netns", "pids", netns], check=False).split():
                with contextlib.suppress(ProcessLookupError, ValueError):
                    os.kill(int(pid), 9)
            run(["ip", "netns", "del", netns], check=False)
        run(["ip", "netns", "add", netns])
        pod = LabPod(name, node, netns, "")
        self.pods[name] = pod
        pod.ip = self.nodes[node].attach_pod(name, f"/var/run/netns/{netns}")
        root = self.workdir / "www" / name
        (root / "cgi-bin").mkdir(parents=True, exist_ok=True)
        (root / "index.html").write_text(name + "\n")
        cgi = root / "cgi-bin" / "ip"
        cgi.write_text(_CGI.format(bb=BUSYBOX))
        cgi.chmod(0o755)
        pod.proc = subprocess.Popen(
            ["ip", "netns", "exec", netns, BUSYBOX, "httpd", "-f", "-p", "80", "-h", str(root)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self._wait_listening(pod)
        return pod

    def _wait_listening(self, pod: LabPod, timeout: float = 5.0) -> None:
        # The host routes every pod CIDR, so it can probe the pod directly.
        deadline = time.monotonic() + timeout
        while True:
            with contextlib.suppress(OSError), socket.create_connection((pod.ip, 80), timeout=0.5):
                return
            if time.monotonic() > deadline:
                raise NetworkError(f"pod {pod.name}: httpd on {pod.ip}:80 did not start within {timeout}s")
            time.sleep(0.02)

    def remove_pod(self, name: str) -> None:
        pod = self.pods.pop(name)
        if pod.proc and pod.proc.poll() is None:
            pod.proc.kill()
            pod.proc.wait(timeout=5)
        if pod.node in self.nodes:
            self.nodes[pod.node].detach_pod(name)
        run(["ip", "netns", "del", pod.netns], check=False)

    def fetch(self, netns: str | None, url: str, timeout: float = 3.0) -> str:
        """GET `url` with busybox wget from inside `netns` (the host when None)."""
        # No `wget -T`: the static busybox of Debian 12 crashes with it; the subprocess timeout bounds it.
        cmd = ([] if netns is None else ["ip", "netns", "exec", netns]) + [
            BUSYBOX,
            "wget",
            "-q",
            "-O",
            "-",
            url,
        ]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            raise NetworkError(f"wget {url} from {netns or 'host'}: no answer within {timeout}s") from exc
        if proc.returncode:
            raise NetworkError(f"wget {url} from {netns or 'host'} failed: {proc.stderr.strip()}")
        return proc.stdout.strip()

    def close(self) -> None:
        errors: list[str] = []
        for name in list(self.pods):
            try:
                self.remove_pod(name)
            except Exception as exc:  # keep going: every other object must still go
                errors.append(f"pod {name}: {exc}")
        for name, net in list(self.nodes.items()):
            try:
                net.teardown()
            except Exception as exc:
                errors.append(f"node {name}: {exc}")
            self.nodes.pop(name, None)
        if not self._lock_fh.closed:
            self._lock_fh.close()  # releases the lock
        if errors:
            raise NetworkError("lab cleanup incomplete: " + "; ".join(errors))
