"""Capture the protobuf request bodies real kubectl sends, as fixtures for tests/apiserver/test_protobuf.py.

Serves a simulated LocalCluster, records every protobuf body the API server decodes, runs kubectl's
typed generators against it and writes each body to tests/data/protobuf/<name>.bin (the bytes exactly
as kubectl sent them).

    PYTHONPATH=$PWD python scripts/capture_kubectl_protobuf.py [/path/to/kubectl]
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile

from nbkube.apiserver import bodies, serve
from nbkube.cluster import LocalCluster

OUT = os.path.join(os.path.dirname(__file__), "..", "tests", "data", "protobuf")

COMMANDS: dict[str, list[str]] = {
    "deployment": ["create", "deployment", "web", "--image=busybox", "--replicas=2", "--port=8080"],
    "quota": ["create", "quota", "q", "--hard=pods=5,requests.cpu=1,limits.memory=2Gi"],
    "service": ["create", "service", "clusterip", "s", "--tcp=80:8080"],
    "serviceaccount": ["create", "serviceaccount", "robot"],
    "token": ["create", "token", "robot", "--duration=1h", "--audience=api"],
    "can_i": ["auth", "can-i", "list", "pods"],
}


def main(kubectl: str) -> None:
    os.makedirs(OUT, exist_ok=True)
    captured: list[tuple[str, bytes]] = []
    original = bodies.decode

    def recording(raw: bytes, content_type: str, method: str) -> object:
        if content_type.startswith("application/vnd.kubernetes.protobuf") and raw:
            captured.append((method, raw))
        return original(raw, content_type, method)

    bodies.decode = recording  # type: ignore[assignment]
    with tempfile.TemporaryDirectory() as tmp, LocalCluster(
        nodes=1, runtime="sim", store="sqlite", data_dir=os.path.join(tmp, "c")
    ) as cluster:
        srv = serve(cluster)
        try:
            kubeconfig = srv.write_kubeconfig(os.path.join(tmp, "kubeconfig"))
            env = {**os.environ, "HOME": tmp}
            for name, args in COMMANDS.items():
                captured.clear()
                proc = subprocess.run(
                    [kubectl, "--kubeconfig", kubeconfig, *args], capture_output=True, text=True, env=env, timeout=60
                )
                print(name, proc.returncode, proc.stdout.strip()[:80], proc.stderr.strip()[:300])
                if captured:
                    with open(os.path.join(OUT, f"{name}.bin"), "wb") as f:
                        f.write(captured[0][1])
        finally:
            srv.stop()


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "/usr/lib/google-cloud-sdk/bin/kubectl.1.33")
