"""The dashboard and the magics inside a real ipykernel (7.x here), driven by nbclient.

ipykernel 7 changed how output from threads is routed; the dashboard's updater thread must keep
working there: it only sets widget traits (which go over the comm), never prints. This runs a
short notebook in a real kernel and checks the widget rendered, followed the cluster from its
background thread, and that `%nbkube get` returned a table."""

from __future__ import annotations

import json
import os

import pytest

pytest.importorskip("ipykernel")
nbformat = pytest.importorskip("nbformat")
NotebookClient = pytest.importorskip("nbclient").NotebookClient

CELLS = [
    """
from nbkube.store import open_store
from nbkube.registry.registry import Registry
from nbkube.notebook.dashboard import Dashboard
from nbkube.notebook import magics
import time, threading
api = Registry(open_store("sqlite://:memory:"))
api.create({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"},
            "status": {"conditions": [{"type": "Ready", "status": "True"}]}})
magics.set_current(api)  # a bare Registry, not a cluster: named by hand
dash = Dashboard(api, throttle=0.01)
dash
""",
    """
for i in range(3):
    api.create({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"web-{i}"},
                "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "busybox"}]}})
deadline = time.monotonic() + 10
while "web-2" not in dash._columns["n1"].pods.value and time.monotonic() < deadline:
    time.sleep(0.02)
print("chips:", sum(f"web-{i}" in dash._columns["n1"].pods.value for i in range(3)))
print("updater:", [t.name for t in threading.enumerate() if t.name == "nbkube-dashboard"])
""",
    "%load_ext nbkube",
    "%nbkube get pods",
    "%nbkube get pods nope",
    """
dash.stop()
magics.set_current(None)
api.close()
print("stopped:", dash._thread.is_alive())
""",
]


def test_dashboard_and_magics_in_a_real_kernel() -> None:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(src.strip()) for src in CELLS]
    client = NotebookClient(nb, timeout=60, kernel_name="python3", allow_errors=False)
    client.execute()
    outs = [c.outputs for c in nb.cells]

    widget_views = [o for o in outs[0] if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    assert widget_views, outs[0]
    assert all(o.output_type != "stream" for o in outs[0])  # nothing printed by the updater thread

    text = "".join(o.get("text", "") for o in outs[1] if o.output_type == "stream")
    assert "chips: 3" in text
    assert "updater: ['nbkube-dashboard']" in text

    table = [o for o in outs[3] if o.output_type == "execute_result"]
    assert table and "<table" in table[0]["data"]["text/html"] and "web-0" in table[0]["data"]["text/html"]

    err_html = [o["data"]["text/html"] for o in outs[4] if "text/html" in o.get("data", {})]
    assert err_html == ['<span style="color:#c00">error: pods &quot;nope&quot; not found</span>']
    assert not any(o.output_type == "error" for cell in outs for o in cell)

    stopped = "".join(o.get("text", "") for o in outs[5] if o.output_type == "stream")
    assert "stopped: False" in stopped

    # the widget state nbclient recorded from the comm: updates set on the updater thread reached
    # the frontend side (the title and the chips were sent after the cell that showed the widget)
    state = nb.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    values = json.dumps(state)
    assert "1 nodes, 3 pods" in values and "web-2" in values


STOP_CELLS = [
    """
import logging, threading, time
import nbkube

class Keep(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.records = []
    def emit(self, record):
        self.records.append(record)

keep = Keep()
logging.getLogger().addHandler(keep)
cluster = nbkube.LocalCluster(nodes=2, runtime="sim", store="sqlite")
dash = cluster.dashboard(throttle=0.05)
dash
""",
    "%load_ext nbkube",
    "%nbkube get nodes",
    """%%nbkube apply
apiVersion: v1
kind: Pod
metadata: {name: solo}
spec:
  containers: [{name: c, image: busybox}]
""",
    "print('in the cluster:', cluster.api.get('Pod', 'solo')['metadata']['name'])",
    "cluster.stop()",
    "time.sleep(7)",
    "print(repr(cluster))\ncluster",
    """
print("warnings:", [r.getMessage() for r in keep.records])
print("dashboard thread alive:", dash._thread.is_alive())
print("folder left:", __import__("os").path.exists(cluster.data_dir))
""",
]


def test_stopping_the_cluster_stops_its_dashboard_and_nothing_prints_afterwards(tmp_path) -> None:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(src.strip()) for src in STOP_CELLS]
    client = NotebookClient(nb, timeout=90, kernel_name="python3", allow_errors=False)
    # the kernel's HOME is the test's folder: the cluster's own folder lands (and goes) there
    old_home = os.environ.get("HOME")
    os.environ["HOME"] = str(tmp_path)
    try:
        client.execute()
    finally:
        if old_home is not None:
            os.environ["HOME"] = old_home
    outs = [c.outputs for c in nb.cells]
    streams = [(i, o.name, o.text) for i, cell in enumerate(outs) for o in cell if o.output_type == "stream"]
    assert [s for s in streams if s[1] == "stderr"] == []
    text = "".join(s[2] for s in streams)
    # the magics followed the kernel's cluster, with no set-up
    nodes = [o for o in outs[2] if o.output_type == "execute_result"]
    assert nodes and "node-2" in nodes[0]["data"]["text/html"]
    assert "in the cluster: solo" in text
    # after stop: repr and display say stopped, nothing warned, nothing runs, no folder left
    assert "stopped)" in text
    shown = [o for o in outs[7] if o.output_type == "execute_result"]
    assert shown and "stopped" in shown[0]["data"]["text/html"]
    assert "warnings: []" in text
    assert "dashboard thread alive: False" in text
    assert "folder left: False" in text
