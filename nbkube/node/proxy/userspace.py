"""The userspace service proxy: the article's kube-proxy, which "listens on a certain port" and forwards.

Used by the embedded (rootless) mode, where no iptables can be written: for every service port it
listens on the ClusterIP (mapped to a loopback address the user can reach without root) and on each
node's NodePort, and forwards every TCP connection to one ready backend, round robin, or sticky per
client address when `sessionAffinity: ClientIP` asks for it. A backend that refuses the connection is
skipped for the next one, as kube-proxy's userspace mode did.

All sockets live on one asyncio loop in one background thread, so a sync (open/close listeners,
swap backend lists) is a cheap message to that loop and the proxy adds one thread to the kernel.

An address that cannot be opened (the port is taken by someone else) is logged once, reported by
every `sync` and retried quietly on the loop with a doubling back-off (`RETRY_FIRST`..`RETRY_MAX`),
not once per sync: a sync comes with every endpoint change, and a log line each time was a flood.

Running out of file descriptors (EMFILE/ENFILE, e.g. a kernel that opened too many files) is one
cause, said in one line: asyncio already stops accepting on a listener for a second when accept()
fails that way, but reports each such failure with a traceback through the loop's exception handler,
once per listener per second, which filled a notebook with tens of thousands of them. The proxy's
own handler turns those into the one line and a note when descriptors are free again; listeners and
backend connections that fail for the same reason back off without a line of their own.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import logging
import threading
import time
from collections.abc import Callable, Coroutine, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from nbkube.node.network.blocks import LEGACY
from nbkube.node.proxy.rules import Backend, ServicePortRule

log = logging.getLogger(__name__)

_T = TypeVar("_T")

RETRY_FIRST = 1.0  # seconds before an address that could not be opened is tried again
RETRY_MAX = 30.0  # the back-off's ceiling
# accept()/socket() failing for want of descriptors or kernel memory: wait, do not shout
RESOURCE_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
STARVE_QUIET = 2.0  # seconds without running out before "available again" (near the limit it flaps)


def _out_of_resources(exc: BaseException | None) -> bool:
    return isinstance(exc, OSError) and exc.errno in RESOURCE_ERRNOS


@dataclass
class _Failure:
    """An address that could not be opened: why, and when it is tried again."""

    error: str
    delay: float
    retry_at: float


@dataclass
class _Listener:
    """One listening socket and the backends it spreads connections over."""

    rule: ServicePortRule
    server: asyncio.AbstractServer | None = None
    next_index: int = 0
    affinity: dict[str, tuple[Backend, float]] = field(default_factory=dict)
    connections: int = 0
    failures: int = 0

    def candidates(self, client_ip: str, now: float) -> list[Backend]:
        """Backends in the order to try them for this client."""
        backends = list(self.rule.backends)
        if not backends:
            return []
        if self.rule.session_affinity:
            sticky = self.affinity.get(client_ip)
            if sticky and sticky[1] > now and sticky[0] in backends:
                backends.remove(sticky[0])
                return [sticky[0], *backends]
        start = self.next_index % len(backends)
        self.next_index = start + 1
        return backends[start:] + backends[:start]


class UserspaceProxy:
    """Forward ClusterIP and NodePort connections to service backends from one asyncio thread."""

    def __init__(
        self,
        *,
        address_map: Callable[[str], str] | None = None,
        connect_timeout: float = 2.0,
        name: str = "nbkube-userspace-proxy",
    ):
        self._address_map = address_map or (lambda ip: ip)
        self._connect_timeout = connect_timeout
        self._name = name
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._listeners: dict[tuple[str, int], _Listener] = {}
        self._errors: dict[tuple[str, int], str] = {}
        self._wanted: dict[tuple[str, int], ServicePortRule] = {}
        self._failing: dict[tuple[str, int], _Failure] = {}
        self._retry_timer: asyncio.TimerHandle | None = None
        self._apply_lock = asyncio.Lock()  # binds to the proxy's loop on first use
        # Open connections and in-flight backend connects, closed by stop(): no socket left behind.
        self._conns: set[_Side] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self.starved = 0  # how many times descriptors ran out (accepts, listens, backend connects)
        self._starving = False  # said once; cleared (with one more line) when a connection works again
        self._starved_at = 0.0

    def _track(self, side: _Side) -> None:
        self._conns.add(side)

    def _untrack(self, side: _Side) -> None:
        self._conns.discard(side)

    # -- lifecycle ---------------------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None:
            return
        loop = asyncio.new_event_loop()
        loop.set_exception_handler(self._loop_error)
        self._apply_lock = asyncio.Lock()  # a lock binds to the first loop that waits on it
        ready = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(loop)
            loop.call_soon(ready.set)
            loop.run_forever()
            # Cancel connection handlers still running so the loop closes without warnings.
            pending = asyncio.all_tasks(loop)
            for task in pending:
                task.cancel()
            if pending:
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.close()

        self._loop = loop
        self._thread = threading.Thread(target=run, name=self._name, daemon=True)
        self._thread.start()
        ready.wait(5)

    def stop(self) -> None:
        """Close every listener and connection; leaves no socket behind."""
        if self._loop is None or self._thread is None:
            return
        with contextlib.suppress(Exception):
            self._call(self._shutdown(), timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop = None
        self._thread = None

    # -- running out of descriptors -------------------------------------------------------------------

    def _loop_error(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        """The loop's exception handler: an accept() out of descriptors is one line, not a traceback."""
        if _out_of_resources(context.get("exception")):
            self._starved(context["exception"], "accepting connections (each listener pauses a second)")
            return
        loop.default_exception_handler(context)

    def _starved(self, exc: OSError, doing: str) -> None:
        self.starved += 1
        self._starved_at = time.monotonic()
        if self._starving:
            return
        self._starving = True
        log.warning(
            "%s: out of file descriptors or memory (%s) while %s; backing off until some are free",
            self._name,
            exc.strerror or exc,
            doing,
        )

    def _fed(self) -> None:
        if self._starving and time.monotonic() - self._starved_at >= STARVE_QUIET:
            self._starving = False
            log.info("%s: file descriptors available again, forwarding as before", self._name)

    def __enter__(self) -> UserspaceProxy:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- programming -------------------------------------------------------------------------------

    def sync(
        self,
        rules: Iterable[ServicePortRule],
        node_ips: Iterable[str],
        extra: Mapping[tuple[str, int], ServicePortRule] | None = None,
    ) -> dict[tuple[str, int], str]:
        """Make the listeners match `rules`; returns the addresses that could not be opened, with why.

        Each rule listens on its (mapped) ClusterIP:port, and on every node IP at its NodePort;
        `extra` adds listeners at exactly the addresses given (pods' hostPorts).
        """
        wanted: dict[tuple[str, int], ServicePortRule] = dict(extra or {})
        nodes = list(node_ips)
        for rule in rules:
            if rule.protocol != "TCP":
                continue  # the userspace proxy forwards TCP only; UDP services need the iptables proxy
            wanted[(self._address_map(rule.cluster_ip), rule.port)] = rule
            if rule.node_port:
                for ip in nodes:
                    wanted[(ip, rule.node_port)] = rule
        if self._loop is None:
            self.start()
        return self._call(self._apply(wanted), timeout=30)

    def listening(self) -> dict[tuple[str, int], str]:
        """Every open listener and the rule id it serves."""
        return {addr: lst.rule.id for addr, lst in list(self._listeners.items()) if lst.server}

    def stats(self) -> dict[str, dict[str, int]]:
        """Connections forwarded and failed per rule id."""
        out: dict[str, dict[str, int]] = {}
        for lst in list(self._listeners.values()):
            entry = out.setdefault(lst.rule.id, {"connections": 0, "failures": 0})
            entry["connections"] += lst.connections
            entry["failures"] += lst.failures
        return out

    def _call(self, coro: Coroutine[Any, Any, _T], timeout: float) -> _T:
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    async def _shutdown(self) -> None:
        await self._apply({})
        if self._retry_timer is not None:
            self._retry_timer.cancel()
        for task in list(self._tasks):
            task.cancel()
        for side in list(self._conns):
            side.transport.abort()
        await asyncio.sleep(0)  # let connection_lost callbacks run before the loop stops

    async def _apply(self, wanted: dict[tuple[str, int], ServicePortRule]) -> dict[tuple[str, int], str]:
        # a retry and a sync both await inside: one at a time, or both would open the same address
        async with self._apply_lock:
            return await self._apply_locked(wanted)

    async def _apply_locked(
        self, wanted: dict[tuple[str, int], ServicePortRule]
    ) -> dict[tuple[str, int], str]:
        self._wanted = wanted
        for addr in [a for a in self._listeners if a not in wanted]:
            listener = self._listeners.pop(addr)
            if listener.server is not None:
                listener.server.close()
                await listener.server.wait_closed()
        for addr in [a for a in self._failing if a not in wanted]:
            del self._failing[addr]
        loop = asyncio.get_running_loop()
        for addr, rule in wanted.items():
            existing = self._listeners.get(addr)
            if existing is not None and existing.server is not None:
                existing.rule = rule  # new backends take effect for the next connection
                continue
            failure = self._failing.get(addr)
            if failure is not None and failure.retry_at > loop.time():
                continue  # still backing off: the retry timer comes back to it
            listener = _Listener(rule)
            try:
                listener.server = await loop.create_server(
                    functools.partial(_ClientSide, self, listener),
                    host=addr[0],
                    port=addr[1],
                    reuse_address=True,
                )
            except OSError as exc:
                error = f"cannot listen on {addr[0]}:{addr[1]} for {rule.id}: {exc.strerror or exc}"
                if _out_of_resources(exc):
                    self._starved(exc, "opening listeners (retried with back-off)")
                elif failure is None:
                    log.warning("%s (retrying quietly with back-off)", error)
                    delay = RETRY_FIRST
                else:
                    delay = min(failure.delay * 2, RETRY_MAX)
                self._failing[addr] = _Failure(error, delay, loop.time() + delay)
                continue
            if failure is not None:
                del self._failing[addr]
                log.info("now listening on %s:%d for %s", addr[0], addr[1], rule.id)
            self._listeners[addr] = listener
        self._errors = {addr: f.error for addr, f in self._failing.items()}
        self._arm_retry(loop)
        return dict(self._errors)

    def _arm_retry(self, loop: asyncio.AbstractEventLoop) -> None:
        """One timer for the earliest due retry (none when nothing is failing)."""
        if self._retry_timer is not None:
            self._retry_timer.cancel()
            self._retry_timer = None
        if not self._failing:
            return
        due = min(f.retry_at for f in self._failing.values())

        def retry() -> None:
            self._retry_timer = None
            task = loop.create_task(self._retry())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

        self._retry_timer = loop.call_at(due, retry)

    async def _retry(self) -> None:
        await self._apply(self._wanted)

    def wanted(self) -> dict[tuple[str, int], ServicePortRule]:
        """Every address the last sync asked for (open or not) and the rule it serves."""
        return dict(self._wanted)

    def failing(self) -> dict[tuple[str, int], str]:
        """The addresses that cannot be opened now, with why (being retried with back-off)."""
        return dict(self._errors)

    # -- forwarding ---------------------------------------------------------------------------------

    async def _connect_backend(self, listener: _Listener, client: _ClientSide) -> None:
        """Try the rule's backends in order; splice the first that accepts to the client."""
        loop = asyncio.get_running_loop()
        peer = client.transport.get_extra_info("peername") or ("", 0)
        for backend in listener.candidates(peer[0], loop.time()):
            try:
                _transport, upstream = await asyncio.wait_for(
                    loop.create_connection(lambda: _BackendSide(client), backend.ip, backend.port),
                    self._connect_timeout,
                )
            except (OSError, TimeoutError) as exc:
                listener.failures += 1
                if _out_of_resources(exc):
                    assert isinstance(exc, OSError)
                    self._starved(exc, "connecting to backends (clients dropped meanwhile)")
                    break  # every other backend would fail the same way: drop this client now
                continue
            if listener.rule.session_affinity:
                listener.affinity[peer[0]] = (backend, loop.time() + listener.rule.affinity_timeout)
            listener.connections += 1
            self._fed()
            client.attach(upstream)
            return
        client.transport.close()


class _Side(asyncio.Protocol):
    """One end of a spliced connection: what it reads is written to its peer, with back-pressure.

    Transports and protocols instead of streams: no task per direction and no copy through a
    StreamReader buffer, which is what keeps the proxy near a direct connection's throughput.
    """

    transport: asyncio.Transport
    peer: _Side | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if self.peer is not None:
            self.peer.transport.write(data)

    def eof_received(self) -> bool | None:
        # Pass the half-close on, so a request/response protocol sees the end of the request.
        if self.peer is not None and self.peer.transport.can_write_eof():
            self.peer.transport.write_eof()
            return True  # keep our write side open for the answer
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        if self.peer is not None:
            self.peer.transport.close()

    # The peer's send buffer is full: stop reading until it drains (and back).
    def pause_writing(self) -> None:
        if self.peer is not None:
            self.peer.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.peer is not None:
            self.peer.transport.resume_reading()


class _ClientSide(_Side):
    """The accepted connection: it holds its bytes until a backend is connected.

    Reading is paused from `connection_made` on, but some Python versions (Debian 12's 3.11.2
    among them) start reading anyway once the transport is set up: whatever arrives before the
    backend is attached is kept here and sent first, never dropped."""

    def __init__(self, proxy: UserspaceProxy, listener: _Listener):
        self._proxy = proxy
        self._listener = listener
        self._early: list[bytes] = []  # bytes read before a backend was attached
        self._early_eof = False

    def data_received(self, data: bytes) -> None:
        if self.peer is None:
            self._early.append(data)
            self.transport.pause_reading()  # (again) until attach: the backend is not there yet
            return
        super().data_received(data)

    def eof_received(self) -> bool | None:
        if self.peer is None:
            self._early_eof = True
            return True  # keep our write side open for the answer
        return super().eof_received()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.transport.pause_reading()  # nothing to send it to yet
        self._proxy._track(self)
        task = asyncio.get_running_loop().create_task(self._proxy._connect_backend(self._listener, self))
        # The loop keeps only a weak reference to tasks: hold it until it is done.
        self._proxy._tasks.add(task)
        task.add_done_callback(self._proxy._tasks.discard)

    def attach(self, upstream: _BackendSide) -> None:
        if self.transport.is_closing():  # the client gave up while we were connecting
            upstream.transport.close()
            return
        self.peer = upstream
        for chunk in self._early:
            upstream.transport.write(chunk)
        self._early.clear()
        if self._early_eof:
            if upstream.transport.can_write_eof():
                upstream.transport.write_eof()
            return  # the client has said all it will: nothing more to read
        self.transport.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        self._proxy._untrack(self)


class _BackendSide(_Side):
    def __init__(self, client: _ClientSide):
        self.peer = client
        self._proxy = client._proxy

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._proxy._track(self)

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        self._proxy._untrack(self)


def loopback_address(cluster_ip: str) -> str:
    """Where slot 0 of the embedded address plan answers for a ClusterIP: 10.96.x.y becomes 127.96.x.y.

    A process without root cannot add 10.96.0.0/12 to an interface, but every 127.0.0.0/8 address
    is already local, so the service range is mirrored into loopback one for one. A cluster's own
    mirror is its block's (`nbkube.node.network.blocks.LoopbackBlock.service_address`)."""
    return LEGACY.service_address(cluster_ip)
