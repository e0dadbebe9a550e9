"""The dashboard and the magics inside a real ipykernel (7.x here), driven by nbclient.

ipykernel 7 changed how output from threads is routed; the dashboard's updater thread must keep
working there: it only sets widget traits (which go over the comm), never prints. This runs a
short notebook in a real kernel and checks the widget rendered, followed the cluster from its
background thread, and that `%nbkube get` returned a table."""

from __future__ import annotations

import json

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
magics.set_current(api)
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
