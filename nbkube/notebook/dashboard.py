"""The live cluster dashboard: nodes as columns, pods as coloured chips, and a few controls.

`cluster.dashboard()` returns one (LocalCluster builds it with its own InformerFactory and its
kill_node / rolling-update callables). It only renders what the informers cache: their handlers just
set a "dirty" flag; ONE updater thread per dashboard wakes on that flag, waits `throttle` seconds
between refreshes so a burst of events costs one refresh, recomputes each column's HTML and assigns
it only where it changed, all inside `hold_sync()`, so an unchanged column sends no message.

Background threads never print or display: ipykernel 7 routes a thread's output by the cell that
started it, so the updater only sets widget traits, which travel over the widget comm from any
thread. Controls write through the registry (scale = a patch of spec.replicas, cordon = a patch of
spec.unschedulable, or nbkube.client.maintenance when that module is there) and report in a
status line; no reconcile logic lives here. The header counts nodes by state (NotReady, cordoned);
columns share one width; after `stop()` (the cluster stopping, or by hand) the dashboard says it
is stopped, greys out and disables its controls, so an old output cell never looks live.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterable
from html import escape
from typing import TYPE_CHECKING, Any, NamedTuple

import ipywidgets as widgets

from nbkube.api.meta import Obj
from nbkube.client import maintenance
from nbkube.notebook.html import badge, chip
from nbkube.notebook.summary import status_of

if TYPE_CHECKING:
    from nbkube.client.informer import Informer, InformerFactory
    from nbkube.registry.registry import Registry

__all__ = ["Dashboard", "ControllerRef", "CONTROLLER_KINDS", "dashboard_for"]

log = logging.getLogger(__name__)

CONTROLLER_KINDS = ("ReplicationController", "ReplicaSet", "Deployment")
_SHORT = {"ReplicationController": "rc", "ReplicaSet": "rs", "Deployment": "deploy"}
_UNSCHEDULED = ""  # column key for pods without spec.nodeName
_STOP_JOIN = 5.0
_COLUMN_WIDTH = "210px"  # every node column the same width, whatever its pods' names


class ControllerRef(NamedTuple):
    """Which controller the dropdown names; what on_rolling_update receives."""

    kind: str
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{_SHORT.get(self.kind, self.kind)}/{self.namespace}/{self.name}"


def _name(obj: Obj) -> str:
    return str((obj.get("metadata") or {}).get("name") or "")


def _ns_name(obj: Obj) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return str(meta.get("namespace") or ""), str(meta.get("name") or "")


def _node_ready(node: Obj) -> bool:
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in (node.get("status") or {}).get("conditions") or []
    )


def _rv(obj: Obj) -> str:
    return str((obj.get("metadata") or {}).get("resourceVersion") or "")


class _Column:
    """One node's column: a header widget and one HTML widget holding all its pod chips."""

    def __init__(self, key: str):
        self.key = key
        self.header = widgets.HTML()
        self.pods = widgets.HTML()
        self.box = widgets.VBox(
            [self.header, self.pods],
            layout=widgets.Layout(
                width=_COLUMN_WIDTH,
                min_width=_COLUMN_WIDTH,
                max_width=_COLUMN_WIDTH,
                border="1px solid #ccc",
                padding="4px",
                margin="2px",
                overflow="hidden",
            ),
        )


class Dashboard(widgets.VBox):
    """Live view of nodes and pods with scale / cordon / drain / kill / restart / rolling-update controls.

    `factory`: an InformerFactory already running (the cluster's); when None the dashboard makes and
    starts its own, and `stop()` stops it. `on_kill(node_name)`, `on_restart(node_name)` and
    `on_rolling_update(ControllerRef, image)` are the cluster's callables; without them those
    buttons say they are unavailable.
    """

    def __init__(
        self,
        api: Registry,
        factory: InformerFactory | None = None,
        *,
        throttle: float = 0.25,
        max_nodes: int = 40,
        on_kill: Callable[[str], Any] | None = None,
        on_rolling_update: Callable[[ControllerRef, str], Any] | None = None,
        sync_timeout: float = 5.0,
        on_restart: Callable[[str], Any] | None = None,
    ):
        self.api = api
        self.throttle = throttle
        self.max_nodes = max_nodes
        self.on_kill = on_kill
        self.on_restart = on_restart
        self.on_rolling_update = on_rolling_update
        self.refreshes = 0  # how many refreshes ran (tests and the benchmark read it)

        self._own_factory = factory is None
        if factory is None:
            from nbkube.client.informer import InformerFactory

            factory = InformerFactory(api)
        self.factory = factory

        self._lock = threading.RLock()  # one refresh at a time (updater thread vs. a control's callback)
        self._dirty = threading.Event()
        self._stopping = threading.Event()
        self._local = threading.local()  # marks trait writes made by the dashboard itself
        self._actions: list[threading.Thread] = []
        self._cancel_cluster_hook: Callable[[], None] | None = None  # set by dashboard_for
        self._columns: dict[str, _Column] = {}
        self._order: list[str] = []
        self._last_counts = ""  # the header's numbers, kept for the stopped state
        self._chips: dict[
            tuple[str, str], tuple[str, str, str]
        ] = {}  # pod key -> (resourceVersion, word, html)

        self.title = widgets.HTML()
        # columns of one width (see _Column) and, stretched, of one height
        self.columns_box = widgets.HBox(layout=widgets.Layout(overflow="auto", align_items="stretch"))
        self.controller = widgets.Dropdown(description="controller", options=[], value=None)
        self.replicas = widgets.IntSlider(
            description="replicas", min=0, max=20, value=0, continuous_update=False, disabled=True
        )
        self.node = widgets.Dropdown(description="node", options=[], value=None)
        self.buttons = {
            verb: widgets.Button(description=verb, layout=widgets.Layout(width="90px"))
            for verb in ("cordon", "uncordon", "drain", "kill", "restart")
        }
        self.image = widgets.Text(description="image", placeholder="busybox:1.36")
        self.rollout = widgets.Button(description="rolling update", layout=widgets.Layout(width="120px"))
        self.status = widgets.HTML()

        self.controller.observe(self._on_controller, names="value")
        self.replicas.observe(self._on_replicas, names="value")
        for verb, button in self.buttons.items():
            button.on_click(lambda _b, verb=verb: self._node_action(verb))
        self.rollout.on_click(lambda _b: self._rolling_update())

        super().__init__(
            [
                self.title,
                self.columns_box,
                widgets.HBox([self.controller, self.replicas]),
                widgets.HBox([self.node, *self.buttons.values()]),
                widgets.HBox([self.image, self.rollout]),
                self.status,
            ]
        )

        self.add_class("nbk-dashboard")  # for the browser tests and anyone styling it
        self.title.add_class("nbk-dashboard-title")
        self._informers: dict[str, Informer] = {
            kind: factory.informer(kind) for kind in ("Node", "Pod", *CONTROLLER_KINDS)
        }
        for inf in self._informers.values():
            inf.add_handler(on_add=self._poke, on_update=self._poke2, on_delete=self._poke)
        if self._own_factory:
            factory.start_all()
            factory.wait_all_synced(timeout=sync_timeout)
        self.refresh()
        self._thread = threading.Thread(target=self._run, name="nbkube-dashboard", daemon=True)
        self._thread.start()

    # -- informer side: only flag ------------------------------------------------------------------

    def _poke(self, _obj: Obj) -> None:
        self._dirty.set()

    def _poke2(self, _old: Obj, _new: Obj) -> None:
        self._dirty.set()

    def _run(self) -> None:
        while not self._stopping.is_set():
            if not self._dirty.wait(timeout=1.0):
                continue
            if self._stopping.is_set():
                break
            self._dirty.clear()
            try:
                self.refresh()
            except Exception:  # the view must outlive one bad object; the log has the details
                log.exception("dashboard refresh failed")
            # the throttle: events arriving now only set the flag; they are picked up together
            self._stopping.wait(self.throttle)

    def stop(self) -> None:
        """Stop the updater thread, wait for running actions, and stop informers it started."""
        already = self._stopping.is_set()
        self._stopping.set()
        self._dirty.set()
        if self._cancel_cluster_hook is not None:  # stopped by hand: the cluster need not call it again
            self._cancel_cluster_hook()
            self._cancel_cluster_hook = None
        thread = getattr(self, "_thread", None)
        if thread is not None and thread.is_alive() and thread is not threading.current_thread():
            thread.join(_STOP_JOIN)
        for t in list(self._actions):
            if t is not threading.current_thread():
                t.join(_STOP_JOIN)
        if self._own_factory and not already:
            self.factory.stop_all()
        if not already:
            self._show_stopped()

    @property
    def stopped(self) -> bool:
        return self._stopping.is_set()

    def _show_stopped(self) -> None:
        """Say so, grey the columns out and disable every control: nothing here is live any more."""
        with self._lock:
            changes: list[tuple[widgets.Widget, str, Any]] = [
                (
                    self.title,
                    "value",
                    f"{badge('stopped', 'grey')} <b>{escape(self._last_counts)}</b> "
                    '<span style="color:#666">(as last seen; the cluster is stopped)</span>',
                ),
                (self.status, "value", '<span style="color:#666">stopped: controls are disabled</span>'),
            ]
            for col in self._columns.values():  # greyed out: what was last seen, not what is
                for w in (col.header, col.pods):
                    changes.append((w, "value", f'<div style="opacity:0.45">{w.value}</div>'))
            for control in (
                self.controller,
                self.replicas,
                self.node,
                self.image,
                self.rollout,
                *self.buttons.values(),
            ):
                changes.append((control, "disabled", True))
            self._apply(changes)

    def close(self) -> None:
        """Close the widget (also what `Widget.close_all()` does at kernel shutdown): stop first."""
        if hasattr(self, "_stopping"):
            self.stop()
        super().close()

    # -- rendering ---------------------------------------------------------------------------------

    def _pod_chip(self, pod: Obj, key: tuple[str, str]) -> tuple[str, str]:
        """(status word, chip html), cached per pod until its resourceVersion changes."""
        rv = _rv(pod)
        cached = self._chips.get(key)
        if cached is not None and cached[0] == rv:
            return cached[1], cached[2]
        word, colour = status_of(pod)
        ip = (pod.get("status") or {}).get("podIP") or ""
        html = chip(key[1], colour, title=f"{key[0]}/{key[1]}: {word} {ip}".strip())
        self._chips[key] = (rv, word, html)
        return word, html

    @staticmethod
    def _header(node: Obj | None, key: str, count: int) -> str:
        if node is None:
            return f'<b style="color:#666">unscheduled</b> <span style="color:#666">({count})</span>'
        word, colour = status_of(node)
        badges = "".join(badge(w, colour if w != "SchedulingDisabled" else "amber") for w in word.split(","))
        return f'<b>{escape(key)}</b> {badges} <span style="color:#666">({count})</span>'

    def _controllers(self) -> list[tuple[str, ControllerRef]]:
        out = []
        for kind in CONTROLLER_KINDS:
            for obj in self._informers[kind].list():
                ns, name = _ns_name(obj)
                ref = ControllerRef(kind, ns, name)
                out.append((str(ref), ref))
        return sorted(out)

    def _desired(self, ref: ControllerRef) -> int | None:
        obj = self._informers[ref.kind].get(f"{ref.namespace}/{ref.name}")
        if obj is None:
            return None
        return int((obj.get("spec") or {}).get("replicas", 1) or 0)

    def refresh(self) -> None:
        """Bring every widget in line with the informer caches, sending only what changed."""
        with self._lock:
            if self.stopped:
                return  # the stopped state stays: the caches are no longer fed
            self._refresh_locked()
            self.refreshes += 1

    def _refresh_locked(self) -> None:
        nodes = sorted(self._informers["Node"].list(), key=_name)
        pods = self._informers["Pod"].list()
        # one pass over the pods: each one's chip (cached by resourceVersion), column and status word
        by_node: dict[str, list[tuple[tuple[str, str], str]]] = {}
        counts: dict[str, int] = {}
        live: set[tuple[str, str]] = set()
        for p in pods:
            pod_key = _ns_name(p)
            live.add(pod_key)
            word, html = self._pod_chip(p, pod_key)
            counts[word] = counts.get(word, 0) + 1
            by_node.setdefault(str((p.get("spec") or {}).get("nodeName") or _UNSCHEDULED), []).append(
                (pod_key, html)
            )
        if len(self._chips) > len(live):
            for gone in [k for k in self._chips if k not in live]:
                del self._chips[gone]

        shown = nodes[: self.max_nodes]
        node_by_name = {_name(n): n for n in shown}
        order = list(node_by_name)
        if by_node.get(_UNSCHEDULED):
            order.append(_UNSCHEDULED)

        changes: list[tuple[widgets.Widget, str, Any]] = []
        if order != self._order:
            self._columns = {k: self._columns.get(k) or _Column(k) for k in order}
            self._order = order
            changes.append((self.columns_box, "children", tuple(self._columns[k].box for k in order)))
        for key in order:
            col = self._columns[key]
            col_pods = sorted(by_node.get(key, []))
            header = self._header(node_by_name.get(key), key, len(col_pods))
            body = "".join(html for _k, html in col_pods) or '<span style="color:#999">no pods</span>'
            if col.header.value != header:
                changes.append((col.header, "value", header))
            if col.pods.value != body:
                changes.append((col.pods, "value", body))

        hidden = len(nodes) - len(shown)
        not_ready = sum(1 for n in nodes if not _node_ready(n))
        cordoned = sum(1 for n in nodes if (n.get("spec") or {}).get("unschedulable"))
        node_notes = [
            badge(f"{not_ready} NotReady", "red") if not_ready else "",
            badge(f"{cordoned} cordoned", "amber") if cordoned else "",
        ]
        self._last_counts = f"{len(nodes)} nodes, {len(pods)} pods"
        title = (
            f"<b>{len(nodes)} nodes</b> {' '.join(x for x in node_notes if x)} · <b>{len(pods)} pods</b> "
            + " ".join(f"{escape(w)}: {n}" for w, n in sorted(counts.items()))
            + (f' <span style="color:#666">({hidden} more nodes not shown)</span>' if hidden > 0 else "")
        )
        if self.title.value != title:
            changes.append((self.title, "value", title))

        controllers = self._controllers()
        if tuple(controllers) != tuple(self.controller.options):
            changes += self._options(self.controller, controllers, [ref for _label, ref in controllers])
        node_names = [_name(n) for n in nodes]
        if tuple(node_names) != tuple(self.node.options):
            changes += self._options(self.node, node_names, node_names)

        self._apply(changes)
        self._sync_slider()

    @staticmethod
    def _options(
        dropdown: widgets.Dropdown, options: list[Any], values: list[Any]
    ) -> list[tuple[widgets.Widget, str, Any]]:
        # new options reset a Dropdown to its first entry: keep the user's choice when it still exists
        keep = dropdown.value
        out: list[tuple[widgets.Widget, str, Any]] = [(dropdown, "options", options)]
        if keep is not None and keep in values:
            out.append((dropdown, "value", keep))
        elif values:
            out.append((dropdown, "value", values[0]))
        return out

    def _apply(self, changes: Iterable[tuple[widgets.Widget, str, Any]]) -> None:
        changes = list(changes)
        if not changes:
            return
        self._local.programmatic = True
        try:
            with contextlib.ExitStack() as stack:
                for w in {id(w): w for w, _t, _v in changes}.values():
                    stack.enter_context(w.hold_sync())
                for w, trait, value in changes:
                    setattr(w, trait, value)
        finally:
            self._local.programmatic = False

    def _sync_slider(self) -> None:
        ref = self.controller.value
        desired = self._desired(ref) if isinstance(ref, ControllerRef) else None
        if desired is None:
            if not self.replicas.disabled:
                self._apply([(self.replicas, "disabled", True)])
            return
        changes: list[tuple[widgets.Widget, str, Any]] = []
        if self.replicas.disabled:
            changes.append((self.replicas, "disabled", False))
        if desired > self.replicas.max - 5:
            changes.append((self.replicas, "max", max(20, desired * 2)))
        if desired != self.replicas.value:
            changes.append((self.replicas, "value", desired))
        self._apply(changes)

    # -- controls ----------------------------------------------------------------------------------

    def _say(self, message: str, error: bool = False) -> None:
        colour = "#c00" if error else "#333"
        self._apply([(self.status, "value", f'<span style="color:{colour}">{escape(message)}</span>')])

    def _on_controller(self, _change: dict[str, Any]) -> None:
        with self._lock:
            self._sync_slider()

    def _on_replicas(self, change: dict[str, Any]) -> None:
        if getattr(self._local, "programmatic", False):
            return  # the dashboard showed the cluster's value; not a user's request
        ref = self.controller.value
        if not isinstance(ref, ControllerRef):
            return
        n = int(change["new"])
        try:
            self.api.patch(ref.kind, ref.name, ref.namespace, {"spec": {"replicas": n}})
            self._say(f"scaled {ref} to {n}")
        except Exception as e:
            self._say(f"scale {ref}: {e}", error=True)

    def _background(self, what: str, fn: Callable[[], Any]) -> None:
        """Run a (possibly slow) action off the kernel's main thread; report in the status line."""

        def run() -> None:
            try:
                fn()
                self._say(f"{what}: done")
            except Exception as e:
                self._say(f"{what}: {e}", error=True)

        self._actions = [t for t in self._actions if t.is_alive()]
        self._say(f"{what}...")
        t = threading.Thread(target=run, name=f"nbkube-dashboard-{what.split()[0]}", daemon=True)
        self._actions.append(t)
        t.start()

    def _node_action(self, verb: str) -> None:
        node = self.node.value
        if not node:
            self._say(f"{verb}: choose a node first", error=True)
            return
        if verb == "restart":
            on_restart = self.on_restart
            if on_restart is None:
                self._say("restart: this dashboard was not given the cluster's restart_node", error=True)
                return
            self._background(f"restart {node}", lambda: on_restart(node))
            return
        if verb == "kill":
            on_kill = self.on_kill
            if on_kill is None:
                self._say("kill: this dashboard was not given the cluster's kill_node", error=True)
                return
            self._background(f"kill {node}", lambda: on_kill(node))
            return
        actions: dict[str, Callable[[Any, str], object]] = {
            "cordon": maintenance.cordon,
            "uncordon": maintenance.uncordon,
            "drain": maintenance.drain,
        }
        fn = actions.get(verb)
        if fn is None:
            self._say(f"{verb}: not a node action (cordon, uncordon, drain, kill)", error=True)
            return
        self._background(f"{verb} {node}", lambda: fn(self.api, node))

    def _rolling_update(self) -> None:
        ref = self.controller.value
        image = self.image.value.strip()
        callback = self.on_rolling_update
        if not isinstance(ref, ControllerRef):
            self._say("rolling update: choose a controller first", error=True)
        elif not image:
            self._say("rolling update: enter the new image", error=True)
        elif callback is None:
            self._say("rolling update: this dashboard was not given the cluster's rolling update", error=True)
        else:
            self._background(f"rolling update {ref} to {image}", lambda: callback(ref, image))


def dashboard_for(
    cluster: Any,
    *,
    on_rolling_update: Callable[[ControllerRef, str], Any] | None = None,
    **kwargs: Any,
) -> Dashboard:
    """A Dashboard over a cluster object: uses `cluster.api`, `cluster.kill_node` for the kill button
    and `cluster.restart_node` (a kubelet restart: pods keep running) for the restart button.

    The dashboard runs its own informers (stopped by `stop()`), so it never interferes with the
    cluster's. LocalCluster's `dashboard()` is meant to be this call. It registers its `stop` with
    the cluster (`cluster.on_stop`), so stopping the cluster stops it before the store goes away.
    """
    kill = getattr(cluster, "kill_node", None)
    restart = getattr(cluster, "restart_node", None)
    dash = Dashboard(
        cluster.api,
        None,
        on_kill=kill if callable(kill) else None,
        on_restart=restart if callable(restart) else None,
        on_rolling_update=on_rolling_update,
        **kwargs,
    )
    on_stop = getattr(cluster, "on_stop", None)
    if callable(on_stop):
        dash._cancel_cluster_hook = on_stop(dash.stop)
    return dash
