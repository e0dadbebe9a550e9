"""Protobuf codec benchmark: a PodList through nbkube's generic protobuf codec against orjson JSON of the
same list, in one run.

The list is `--pods` copies of the rich Pod fixture (tests/data/protobuf/objects.json: probes,
volumes, resources, env, status with conditions), each renamed. It measures encode and decode of the
whole list, each the best of `--repeat` rounds, as rows of lists/s against orjson's with the body
sizes (a ratio below 1: protobuf is slower). The codec is pure Python
walking a schema table; orjson is C, so the ratio says what serving protobuf costs the API server.

    python benchmarks/protobuf.py --pods 500 --repeat 5
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import time
from collections.abc import Callable
from typing import Any

import orjson
from common import Row, print_rows

from nbkube.apiserver import protobuf

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "tests", "data", "protobuf", "objects.json")


def pod_list(n: int) -> dict[str, Any]:
    with open(FIXTURES) as f:
        rich = next(o for o in json.load(f) if o["kind"] == "Pod")
    items = []
    for i in range(n):
        item = copy.deepcopy(rich)
        del item["apiVersion"], item["kind"]
        item["metadata"]["name"] = f"{rich['metadata']['name']}-{i}"
        items.append(item)
    return {"apiVersion": "v1", "kind": "PodList", "metadata": {"resourceVersion": "1000"}, "items": items}


def best(repeat: int, fn: Callable[[], object]) -> float:
    """The shortest of `repeat` timed calls, in seconds."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def rows_for(pods: int, repeat: int) -> list[Row]:
    listed = pod_list(pods)
    pb = protobuf.encode(listed)
    js = orjson.dumps(listed)
    if protobuf.decode(pb)["items"] != listed["items"]:
        raise RuntimeError("the protobuf round trip changed the list")
    what = f"PodList of {pods} rich pods: protobuf {len(pb):,} B, JSON {len(js):,} B; best of {repeat}"
    out = []
    for op, ours, theirs in (
        ("encode", lambda: protobuf.encode(listed), lambda: orjson.dumps(listed)),
        ("decode", lambda: protobuf.decode(pb), lambda: orjson.loads(js)),
    ):
        # lists per second: above 1 the protobuf codec is faster than orjson
        out.append(Row(f"protobuf {op} of a PodList", 1 / best(repeat, ours), "lists/s",
                       baseline=f"orjson {op} of the same list", baseline_value=1 / best(repeat, theirs),
                       baseline_kind="same-run", samples=repeat, note=what))  # fmt: skip
    return out


def rows(quick: bool = False) -> list[Row]:
    return rows_for(50, 3) if quick else rows_for(500, 5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pods", type=int, default=500, help="items in the PodList (default 500)")
    parser.add_argument("--repeat", type=int, default=5, help="timed rounds; the best counts (default 5)")
    args = parser.parse_args()
    if args.pods < 1 or args.repeat < 1:
        parser.error("--pods and --repeat must be at least 1")
    print_rows(rows_for(args.pods, args.repeat))


if __name__ == "__main__":
    main()
