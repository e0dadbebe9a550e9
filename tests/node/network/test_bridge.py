"""The local multi-node pod network with real packets: 3 nodes, 2 pods each (root only).

Checks the article's three rules (pod<->pod across nodes without NAT, node<->pod, the source a pod
sees is the other pod's own IP), host->pod, idempotent setup and attach, IP persistence across an
agent restart, and that teardown leaves no namespace, link, route or chain of ours.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from nbkube.node.network.bridge import HOST_BRIDGE, HOST_FORWARD_CHAIN, BridgeNetwork
from nbkube.node.network.lab import PodLab, lab_available

_why = lab_available()
pytestmark = [pytest.mark.skipif(_why is not None, reason=_why or ""), pytest.mark.timeout(60)]

NODES = {"bt1": 1, "bt2": 2, "bt3": 3}


def _ours() -> dict[str, list[str]]:
    """Every netns, host link, host route and host chain that looks like ours."""
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.split("\n")
    links = json.loads(subprocess.run(["ip", "-j", "link"], capture_output=True, text=True).stdout)
    routes = subprocess.run(["ip", "route"], capture_output=True, text=True).stdout.splitlines()
    chains = subprocess.run(["iptables", "-S"], capture_output=True, text=True).stdout.splitlines()
    return {
        "netns": [n for n in netns if n.startswith(("nbk-bt", "nbkp-bt"))],
        "links": [link["ifname"] for link in links if link["ifname"].startswith("nbk")],
        "routes": [r for r in routes if r.startswith(("10.244.", "10.240."))],
        "chains": [c for c in chains if HOST_FORWARD_CHAIN in c],
    }


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PodLab]:
    lab = PodLab(tmp_path_factory.mktemp("lab"))
    try:
        for name, index in NODES.items():
            lab.add_node(name, index)
        for name in NODES:
            for i in (1, 2):
                lab.add_pod(name, f"{name}-p{i}")
        yield lab
    finally:
        lab.close()
    left = _ours()
    assert not any(left.values()), f"teardown left these behind: {left}"


def test_pods_get_addresses_from_their_node_cidr(lab: PodLab) -> None:
    for pod in lab.pods.values():
        index = NODES[pod.node]
        assert pod.ip.startswith(f"10.244.{index}."), pod
    assert len({p.ip for p in lab.pods.values()}) == 6


def test_pod_to_pod_across_nodes_sees_own_source_ip(lab: PodLab) -> None:
    pods = list(lab.pods.values())
    for client in pods:
        for server in pods:
            if client.node == server.node and client is not server:
                continue  # same-node pairs are covered below; keep the test quick
            assert lab.fetch(client.netns, f"http://{server.ip}/") == server.name
            # Rule 3: no NAT, the server sees the client pod's own address.
            assert lab.fetch(client.netns, f"http://{server.ip}/cgi-bin/ip") == client.ip


def test_pod_to_pod_on_same_node(lab: PodLab) -> None:
    a, b = lab.pods["bt1-p1"], lab.pods["bt1-p2"]
    assert lab.fetch(a.netns, f"http://{b.ip}/cgi-bin/ip") == a.ip


def test_node_to_pod_and_pod_to_node(lab: PodLab) -> None:
    for name, net in lab.nodes.items():
        for pod in lab.pods.values():
            # From the node's own namespace (where its agent and proxy live) to every pod.
            assert lab.fetch(net.netns, f"http://{pod.ip}/") == pod.name
        # The pod sees the node's address as it is, too: the node's gateway on its own node...
        local = lab.pods[f"{name}-p1"]
        assert lab.fetch(net.netns, f"http://{local.ip}/cgi-bin/ip") == net.gateway
    # ...and the node IP from another node.
    assert lab.fetch(lab.nodes["bt2"].netns, f"http://{lab.pods['bt1-p1'].ip}/cgi-bin/ip") == "10.240.0.3"
    # Pod -> node: ping the node IPs from a pod.
    for net in lab.nodes.values():
        subprocess.run(
            ["ip", "netns", "exec", "nbkp-bt3-p2", "busybox", "ping", "-c1", "-W2", net.node_ip],
            check=True,
            capture_output=True,
            timeout=5,
        )


def test_host_to_pod(lab: PodLab) -> None:
    for pod in lab.pods.values():
        assert lab.fetch(None, f"http://{pod.ip}/cgi-bin/ip") == "10.240.0.1"


def test_setup_and_attach_are_idempotent_and_survive_restart(lab: PodLab, tmp_path_factory) -> None:
    net = lab.nodes["bt2"]
    again = BridgeNetwork("bt2", 2, net.state_path.parent)  # as a restarted agent would
    info = again.setup_node()
    assert (info.node_ip, info.pod_cidr, info.netns) == ("10.240.0.3", "10.244.2.0/24", "nbk-bt2")
    pod = lab.pods["bt2-p1"]
    assert again.attach_pod("bt2-p1", f"/var/run/netns/{pod.netns}") == pod.ip
    assert again.pod_ips()["bt2-p1"] == pod.ip
    assert lab.fetch("nbkp-bt1-p1", f"http://{pod.ip}/") == "bt2-p1"


def test_detach_frees_the_address_and_link(lab: PodLab) -> None:
    pod = lab.add_pod("bt3", "bt3-p3")
    outer = lab.nodes["bt3"].pod_ifname("bt3-p3")
    lab.remove_pod("bt3-p3")
    links = subprocess.run(["ip", "-n", "nbk-bt3", "-br", "link"], capture_output=True, text=True).stdout
    assert outer not in links
    assert "bt3-p3" not in lab.nodes["bt3"].pod_ips()
    again = lab.add_pod("bt3", "bt3-p4")
    # Round robin: a just-freed address is not handed out again at once (stale ARP caches).
    assert again.ip != pod.ip and again.ip.startswith("10.244.3.")
    lab.remove_pod("bt3-p4")


def test_attach_to_missing_netns_is_a_clear_error(lab: PodLab) -> None:
    with pytest.raises(Exception, match="does not exist"):
        lab.nodes["bt1"].attach_pod("ghost", "/var/run/netns/nbkp-nope")
    assert "ghost" not in lab.nodes["bt1"].pod_ips()


def test_node_teardown_leaves_nothing_of_that_node(lab: PodLab) -> None:
    net = lab.add_node("bt9", 9)
    lab.add_pod("bt9", "bt9-p1")
    assert lab.fetch("nbkp-bt1-p1", "http://10.244.9.2/") == "bt9-p1"
    lab.remove_pod("bt9-p1")
    net.teardown()
    del lab.nodes["bt9"]
    left = _ours()
    assert not [n for n in left["netns"] if "bt9" in n]
    assert "nbkv9" not in left["links"] and HOST_BRIDGE in left["links"]  # others still use nbk0
    assert not [r for r in left["routes"] if r.startswith("10.244.9.")]
    assert not net.state_path.exists()
    # The module fixture asserts that closing the lab leaves nothing at all (bridge, chain, routes).


def test_attach_by_pid_as_docker_sandboxes_are(lab: PodLab) -> None:
    # A process in its own network namespace stands in for a pause container (`--network none`).
    proc = subprocess.Popen(["unshare", "--net", "sleep", "30"])
    net = lab.nodes["bt2"]
    try:
        for _ in range(250):  # bounded poll: until unshare has switched namespaces and exec'd sleep
            with contextlib.suppress(OSError):
                if (
                    _netns_id(proc.pid) != _netns_id(os.getpid())
                    and Path(f"/proc/{proc.pid}/comm").read_text() == "sleep\n"
                ):
                    break
            time.sleep(0.02)
        ip = net.attach_pod("pid-pod", proc.pid)
        assert ip.startswith("10.244.2.")
        out = subprocess.run(
            ["nsenter", f"--net=/proc/{proc.pid}/ns/net", "busybox", "wget", "-q", "-O", "-",
             f"http://{lab.pods['bt1-p1'].ip}/cgi-bin/ip"],
            capture_output=True, text=True, timeout=5,
        )  # fmt: skip
        assert out.stdout.strip() == ip
    finally:
        proc.kill()
        proc.wait(timeout=5)
        net.detach_pod("pid-pod")
    assert "pid-pod" not in net.pod_ips()


def _netns_id(pid: int) -> str:
    return os.readlink(f"/proc/{pid}/ns/net")
