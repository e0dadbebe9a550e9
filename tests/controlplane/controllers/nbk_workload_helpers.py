"""Helpers for the workload controller tests: a fake "kubelet" that binds every new pod to a node
and marks it Running and Ready (or holds it not-ready on request), bounded polling, a Registry on a
fake clock and the start/stop of controllers over synced informers (every test module's fixtures
did both the same way)."""

from __future__ import annotations

import contextlib
import copy
import threading
import time
from collections.abc import Callable, Iterator

from nbkube.api.meta import Obj
from nbkube.client.controller import Controller
from nbkube.client.informer import InformerFactory
from nbkube.clock import REAL_CLOCK, Clock, rfc3339
from nbkube.errors import Conflict, NotFound
from nbkube.registry.registry import Registry


class FakeKubelet:
    """Watches pods and, one at a time, binds each to a node and makes it Running + Ready.

    `hold` (a predicate on the pod) keeps matching pods Running but not Ready, to test readiness
    gates. Pod IPs come from 10.244.0.0/16 in creation order."""

    def __init__(self, api: Registry, nodes: int = 3, clock: Clock = REAL_CLOCK):
        self.api = api
        self.nodes = [f"node-{i}" for i in range(nodes)]
        self.clock = clock
        self.hold: Callable[[Obj], bool] = lambda pod: False
        self.paused = threading.Event()
        self._stop = threading.Event()
        self._n = 0
        self._thread = threading.Thread(target=self._run, name="fake-kubelet", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def make_ready(self, pod: Obj) -> None:
        self._converge(pod, force_ready=True)

    def _converge(self, pod: Obj, force_ready: bool = False) -> None:
        for _ in range(10):
            new = copy.deepcopy(pod)
            status = new.setdefault("status", {})
            want_ready = force_ready or not self.hold(pod)
            cur_ready = any(
                c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or []
            )
            if new["spec"].get("nodeName") and status.get("phase") == "Running" and cur_ready == want_ready:
                return
            try:
                if not new["spec"].get("nodeName"):
                    new["spec"]["nodeName"] = self.nodes[self._n % len(self.nodes)]
                    new = self.api.update(new)
                    status = new.setdefault("status", {})
                if not status.get("podIP"):
                    self._n += 1
                    status["podIP"] = f"10.244.{self._n // 250}.{self._n % 250 + 1}"
                status["phase"] = "Running"
                now = rfc3339(self.clock.now())
                status["conditions"] = [
                    {"type": "PodScheduled", "status": "True", "lastTransitionTime": now},
                    {"type": "Ready", "status": "True" if want_ready else "False", "lastTransitionTime": now},
                ]
                self.api.update_status(new)
                return
            except Conflict:
                try:
                    pod = self.api.get("Pod", pod["metadata"]["name"], pod["metadata"]["namespace"])
                except NotFound:
                    return
            except NotFound:
                return

    def _run(self) -> None:
        while not self._stop.is_set():
            if self.paused.is_set():
                self._stop.wait(0.01)
                continue
            pods, _ = self.api.list("Pod")
            for pod in pods:
                if self._stop.is_set() or self.paused.is_set():
                    break
                self._converge(pod)
            self._stop.wait(0.01)


def wait_for(
    cond: Callable[[], object],
    timeout: float = 10.0,
    what: str = "condition",
    detail: Callable[[], object] | None = None,
) -> object:
    """Poll `cond` until truthy (bounded): the controllers run in threads, so tests wait for state."""
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() >= deadline:
            extra = f": {detail()}" if detail is not None else ""
            raise AssertionError(f"timed out after {timeout}s waiting for {what}{extra}")
        time.sleep(0.01)


def gone(api: Registry, kind: str, name: str, namespace: str = "default") -> bool:
    """Whether the object no longer exists (for `wait_for`)."""
    try:
        api.get(kind, name, namespace)
    except NotFound:
        return True
    return False


def rc_manifest(
    name: str = "nginx", replicas: int = 3, image: str = "nginx:1.7.9", app: str = "nginx"
) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "ReplicationController",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "replicas": replicas,
            "selector": {"app": app},
            "template": {
                "metadata": {"labels": {"app": app}},
                "spec": {"containers": [{"name": "nginx", "image": image, "ports": [{"containerPort": 80}]}]},
            },
        },
    }


def active_pods(api: Registry, namespace: str = "default", selector: str = "") -> list[Obj]:
    pods, _ = api.list("Pod", namespace, label_selector=selector or None)
    return [p for p in pods if (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed")]


def registry_on(clock: Clock) -> Iterator[Registry]:
    """A Registry on a fresh in-memory store stamping times from `clock`: `yield from` it in a test
    module's own `api` fixture when the controllers under test run on a fake clock."""
    from nbk_teststore import make_store  # tests/registry/: on the path this folder's conftest sets

    reg = Registry(make_store(), clock=clock)
    try:
        yield reg
    finally:
        reg.close()


@contextlib.contextmanager
def started(factory: InformerFactory, *controllers: Controller) -> Iterator[None]:
    """Start the factory's informers, wait for their caches, start `controllers`; stop them (in
    reverse order) on the way out. The factory itself is the `factory` fixture's to stop."""
    factory.start_all()
    assert factory.wait_all_synced(5)
    for c in controllers:
        c.start()
    try:
        yield
    finally:
        for c in reversed(controllers):
            c.stop()
