"""Protobuf codec benchmark: a PodList through nbkube's generic protobuf codec against orjson JSON of the
same list, in one run.

The list is `--pods` copies of the rich Pod fixture (tests/data/protobuf/objects.json: probes,
volumes, resources, env, status with conditions), each renamed. It measures encode and decode of the
whole list, each the best of `--repeat` rounds, and prints lists/s, MB/s of the encoded form, the
body sizes, and the ratios protobuf/JSON (below 1: protobuf is slower). The codec is pure Python
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pods", type=int, default=500, help="items in the PodList (default 500)")
    parser.add_argument("--repeat", type=int, default=5, help="timed rounds; the best counts (default 5)")
    args = parser.parse_args()
    if args.pods < 1 or args.repeat < 1:
        parser.error("--pods and --repeat must be at least 1")

    listed = pod_list(args.pods)
    pb = protobuf.encode(listed)
    js = orjson.dumps(listed)
    assert protobuf.decode(pb)["items"] == listed["items"], "the protobuf round trip changed the list"
    rows = [
        ("encode", best(args.repeat, lambda: protobuf.encode(listed)), best(args.repeat, lambda: orjson.dumps(listed))),
        ("decode", best(args.repeat, lambda: protobuf.decode(pb)), best(args.repeat, lambda: orjson.loads(js))),
    ]
    print(f"PodList of {args.pods} pods: protobuf {len(pb):,} B, JSON {len(js):,} B (size ratio {len(pb) / len(js):.2f})")
    print(f"{'op':8} {'protobuf lists/s':>17} {'MB/s':>8} {'orjson lists/s':>15} {'MB/s':>8} {'protobuf/JSON':>14}")
    for op, t_pb, t_js in rows:
        print(
            f"{op:8} {1 / t_pb:17.1f} {len(pb) / t_pb / 1e6:8.1f} {1 / t_js:15.1f} {len(js) / t_js / 1e6:8.1f}"
            f" {t_js / t_pb:14.3f}"
        )


if __name__ == "__main__":
    main()
