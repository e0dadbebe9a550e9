"""hostPort on the bridge network: rendered rules, then real packets in a 2-node lab (root only).

The lab test checks that a node's hostPort answers from the host, from another node and from the
pod itself (hairpin), that `hostIP` narrows it to one address, that the pod sees the caller's own
address (DNAT only, no SNAT, except for hairpin), and that detaching the pod takes the rule away.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import pytest

from nbkube.node.network.base import NetworkError, NoNetwork
from nbkube.node.network.hostports import HostPortMapping, HostPortTable, pod_host_ports
from nbkube.node.network.lab import PodLab, lab_available

POD = {
    "spec": {
        "containers": [
            {"name": "a", "ports": [{"containerPort": 80, "hostPort": 8081}, {"containerPort": 9000}]},
            {
                "name": "b",
                "ports": [{"containerPort": 53, "hostPort": 5353, "protocol": "UDP", "hostIP": "10.240.0.8"}],
            },
        ]
    }
}


def test_pod_host_ports_takes_only_ports_with_a_host_port() -> None:
    assert pod_host_ports(POD) == [
        HostPortMapping(8081, 80, "TCP", ""),
        HostPortMapping(5353, 53, "UDP", "10.240.0.8"),
    ]
    assert pod_host_ports({"spec": {"containers": [{"name": "a"}]}}) == []


def test_render_dnats_each_mapping_and_masquerades_hairpin_only() -> None:
    table = HostPortTable("nbk-x", 7)
    text = table.render({"uid-1": ("10.244.7.5", pod_host_ports(POD))})
    lines = text.splitlines()
    assert lines[:3] == ["*nat", ":NBK-HOSTPORTS-7 - [0:0]", ":NBK-HPMASQ-7 - [0:0]"]
    assert lines[-1] == "COMMIT"
    dnat = [line for line in lines if line.startswith("-A NBK-HOSTPORTS-7")]
    assert len(dnat) == 2
    assert "-p tcp -m tcp --dport 8081" in dnat[0] and dnat[0].endswith("--to-destination 10.244.7.5:80")
    assert "-d 10.240.0.8/32 -p udp -m udp --dport 5353" in dnat[1]
    masq = [line for line in lines if line.startswith("-A NBK-HPMASQ-7")]
    assert all("-s 10.244.7.5/32 -d 10.244.7.5/32" in line and "MASQUERADE" in line for line in masq)
    # no mappings: the chains are declared (so flushed) and left empty
    assert table.render({}) == "*nat\n:NBK-HOSTPORTS-7 - [0:0]\n:NBK-HPMASQ-7 - [0:0]\nCOMMIT\n"


def test_render_refuses_what_must_not_reach_iptables() -> None:
    table = HostPortTable(None, 1)
    with pytest.raises(NetworkError, match="unknown protocol"):
        table.render({"u": ("10.244.1.2", [HostPortMapping(80, 80, "ICMP")])})
    with pytest.raises(ValueError):
        table.render({"u": ("10.244.1.2; rm -rf /", [HostPortMapping(80, 80)])})


def test_fake_network_records_host_ports_of_attached_pods() -> None:
    net = NoNetwork()
    with pytest.raises(NetworkError, match="before the pod is attached"):
        net.set_host_ports("p", [HostPortMapping(80, 80)])
    net.attach_pod("p", 0)
    net.set_host_ports("p", [HostPortMapping(80, 80)])
    assert net.host_ports == {"p": [HostPortMapping(80, 80)]}
    net.detach_pod("p")
    assert net.host_ports == {}


# --- real packets -----------------------------------------------------------------------------

_why = lab_available()


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PodLab]:
    if _why is not None:
        pytest.skip(_why)
    lab = PodLab(tmp_path_factory.mktemp("hplab"))
    try:
        lab.add_node("hp1", 7)
        lab.add_node("hp2", 8)
        lab.add_pod("hp1", "hp1-web")
        lab.add_pod("hp2", "hp2-client")
        yield lab
    finally:
        lab.close()


def _refused(lab: PodLab, netns: str | None, url: str) -> bool:
    try:
        lab.fetch(netns, url, timeout=1.0)
    except (OSError, subprocess.SubprocessError, AssertionError, RuntimeError):
        return True
    return False


@pytest.mark.skipif(_why is not None, reason=_why or "")
@pytest.mark.timeout(60)
def test_host_port_answers_from_host_other_node_and_the_pod_itself(lab: PodLab) -> None:
    node = lab.nodes["hp1"]
    web, client = lab.pods["hp1-web"], lab.pods["hp2-client"]
    node.set_host_ports("hp1-web", [HostPortMapping(8081, 80)])
    url = f"http://{node.node_ip}:8081/"
    assert lab.fetch(None, url) == "hp1-web"  # from the host, through the node's uplink
    assert lab.fetch(client.netns, url) == "hp1-web"  # from a pod on another node
    # DNAT only: the pod sees the caller's own address
    assert lab.fetch(client.netns, url + "cgi-bin/ip") == client.ip
    # hairpin: the pod reaches itself through its node's hostPort (masqueraded to the gateway)
    assert lab.fetch(web.netns, url) == "hp1-web"
    assert len(node.host_port_table().rules()) == 2
    # idempotent: the same mappings again change nothing
    node.set_host_ports("hp1-web", [HostPortMapping(8081, 80)])
    assert len(node.host_port_table().rules()) == 2


@pytest.mark.skipif(_why is not None, reason=_why or "")
@pytest.mark.timeout(60)
def test_host_ip_narrows_and_detach_removes(lab: PodLab) -> None:
    node, other = lab.nodes["hp1"], lab.nodes["hp2"]
    node.set_host_ports("hp1-web", [HostPortMapping(8082, 80, host_ip=other.node_ip)])
    # the node has no such address: nothing answers on its own
    assert _refused(lab, None, f"http://{node.node_ip}:8082/")
    node.set_host_ports("hp1-web", [HostPortMapping(8082, 80, host_ip=node.node_ip)])
    assert lab.fetch(None, f"http://{node.node_ip}:8082/") == "hp1-web"
    lab.remove_pod("hp1-web")
    assert node.host_port_table().rules() == []
    assert _refused(lab, None, f"http://{node.node_ip}:8082/")
    with pytest.raises(NetworkError, match="before the pod is attached"):
        node.set_host_ports("hp1-web", [HostPortMapping(8082, 80)])
