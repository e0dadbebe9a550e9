from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import matplotlib
import pytest

matplotlib.use("Agg")

from nbk_exptest import EXAMPLES, ready_count, wait_for  # noqa: E402

from nbkube.cluster import LocalCluster  # noqa: E402


@pytest.fixture
def demo_cluster(tmp_path: Path) -> Iterator[LocalCluster]:
    """3 sim nodes (fast profile) running the demo RC (5 replicas) and its NodePort Service."""
    with LocalCluster(nodes=3, runtime="sim", store="memory", data_dir=str(tmp_path)) as c:
        c.apply(str(EXAMPLES / "web-rc.yaml"))
        c.apply(str(EXAMPLES / "web-service.yaml"))
        wait_for(lambda: ready_count(c.api) == 5, what="5 ready demo pods")
        yield c
