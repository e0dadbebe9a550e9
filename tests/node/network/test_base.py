"""The PodNetwork seam without root: address plan, NoNetwork, LoopbackNetwork, bridge bookkeeping."""

from __future__ import annotations

import json

import pytest

from nbkube.node.network.base import NetworkError, NoNetwork, PodNetwork, node_addresses
from nbkube.node.network.bridge import BridgeNetwork
from nbkube.node.network.loopback import LoopbackNetwork


def test_address_plan() -> None:
    assert node_addresses(1) == ("10.240.0.2", "10.244.1.0/24")
    assert node_addresses(253) == ("10.240.0.254", "10.244.253.0/24")
    for bad in (0, 254, -1):
        with pytest.raises(ValueError, match="node index"):
            node_addresses(bad)


@pytest.mark.parametrize("make", [lambda: NoNetwork(2), lambda: LoopbackNetwork(2)])
def test_fake_backends_keep_the_contract(make) -> None:
    net = make()
    assert isinstance(net, PodNetwork)
    info = net.setup_node()
    assert info.pod_cidr.endswith(".2.0/24") and info.netns is None
    a = net.attach_pod("a", 123)
    assert net.attach_pod("a", 123) == a  # idempotent
    b = net.attach_pod("b", 124)
    assert a != b and a.rsplit(".", 1)[0] == info.pod_cidr.rsplit(".", 1)[0]
    net.detach_pod("a")
    net.detach_pod("unknown")  # no-op
    assert net.attach_pod("c", 125) not in (b,)
    net.set_routes({"n1": ("10.240.0.2", "10.244.1.0/24")})
    net.teardown()


def test_loopback_addresses_and_exhaustion() -> None:
    net = LoopbackNetwork(3)
    assert net.setup_node().node_ip == "127.240.0.4"
    ips = [net.attach_pod(str(i)) for i in range(253)]
    assert ips[0] == "127.244.3.2" and ips[-1] == "127.244.3.254"
    with pytest.raises(NetworkError, match="no loopback address left"):
        net.attach_pod("one-too-many")
    net.detach_pod("7")
    assert net.attach_pod("again") == ips[7]


def test_bridge_rejects_bad_names_and_foreign_state(tmp_path) -> None:
    with pytest.raises(ValueError, match="node name"):
        BridgeNetwork("Bad_Name", 1, tmp_path)
    with pytest.raises(ValueError, match="node index"):
        BridgeNetwork("n1", 0, tmp_path)
    (tmp_path / "n1.json").write_text(json.dumps({"index": 5, "pods": {}}))
    with pytest.raises(NetworkError, match=r"n1.json belongs to node index 5"):
        BridgeNetwork("n1", 1, tmp_path).pod_ips()
    (tmp_path / "n2.json").write_text("{not json")
    with pytest.raises(NetworkError, match="n2.json is unreadable"):
        BridgeNetwork("n2", 2, tmp_path).pod_ips()


def test_bridge_allocates_round_robin(tmp_path) -> None:
    net = BridgeNetwork("n1", 1, tmp_path)
    state = {"index": 1, "pods": {}}
    first = net._allocate(state)
    assert first == "10.244.1.2"  # .1 is the gateway
    state["pods"]["a"] = first
    second = net._allocate(state)
    assert second == "10.244.1.3"
    del state["pods"]["a"]
    state["pods"]["b"] = second
    assert net._allocate(state) == "10.244.1.4"  # not the just-freed .2
    state["last"] = "10.244.1.254"
    assert net._allocate(state) == "10.244.1.2"  # wraps around
    assert net.pod_ifname("uid-1") == net.pod_ifname("uid-1") and len(net.pod_ifname("x")) <= 15


def test_make_network_by_name(tmp_path) -> None:
    from nbkube.node.network import make_network
    from nbkube.node.network.bridge import BridgeNetwork

    assert isinstance(make_network("none", "n1", 1), NoNetwork)
    assert isinstance(make_network("loopback", "n1", 1), LoopbackNetwork)
    assert isinstance(make_network("bridge", "n1", 1, tmp_path), BridgeNetwork)
    with pytest.raises(ValueError, match="state_dir"):
        make_network("bridge", "n1", 1)
    with pytest.raises(ValueError, match="unknown network kind 'flannel'"):
        make_network("flannel", "n1", 1)
