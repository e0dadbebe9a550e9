"""The DNS server: UDP and TCP on one address and port, answers from a `Zone`, the rest forwarded.

Built on dnslib (wire format only; the sockets and threads are ours). Cluster names are answered on
the receiving thread (a dict lookup); other names go to a small pool that forwards them to the
upstream resolvers (the host's, from /etc/resolv.conf: `upstreams_from_resolv_conf`) and relays the
answer, SERVFAIL when none answers in time. The address and port are the caller's; `port=0` takes a
free one for both protocols (UDP first, then TCP on the same number, retried if TCP's is taken).

Answers to cluster names are cached by the query's bytes after its ID (flags, question, EDNS), for
as long as the zone does not change (`Zone.version`): a hit costs a dict lookup instead of
dnslib's parse and pack, which is most of a query's cost (benchmarks/dns.py measures both). A
reply depends only on those bytes and the zone, so the cached one with the new ID is the answer.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import struct
import threading
from concurrent.futures import ThreadPoolExecutor

from dnslib import CNAME, QTYPE, RCODE, RR, SOA, SRV, A, DNSRecord

from nbkube.controlplane.dns.zone import Zone

__all__ = ["DNSServer", "upstreams_from_resolv_conf", "TTL"]

log = logging.getLogger(__name__)

TTL = 5  # seconds; CoreDNS's kubernetes plugin default, so a moved pod is not cached long
_BIND_ATTEMPTS = 20
_TCP_MAX = 64  # TCP connections served at once
_CACHE_MAX = 20_000  # cached answers; the cache starts over when full (and on every zone change)


def upstreams_from_resolv_conf(path: str = "/etc/resolv.conf") -> list[tuple[str, int]]:
    """The nameservers of a resolv.conf as (address, 53); [] when it names none."""
    out: list[tuple[str, int]] = []
    with contextlib.suppress(FileNotFoundError), open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            parts = line.split("#", 1)[0].split()
            if len(parts) >= 2 and parts[0] == "nameserver":
                out.append((parts[1], 53))
    return out


class DNSServer:
    def __init__(
        self,
        zone: Zone,
        host: str,
        port: int = 0,
        *,
        upstreams: list[tuple[str, int]] | None = None,
        forward_timeout: float = 2.0,
        forward_workers: int = 4,
    ):
        self.zone = zone
        self.host = host
        self.upstreams = list(upstreams or [])
        self.forward_timeout = forward_timeout
        self._udp, self._tcp = self._bind(host, port)
        self.port = self._udp.getsockname()[1]
        self._stop = threading.Event()
        self._pool = ThreadPoolExecutor(max_workers=forward_workers, thread_name_prefix="nbkube-dns-fwd")
        self._threads: list[threading.Thread] = []
        self.queries = 0
        self.forwarded = 0
        self._cache: dict[bytes, bytes] = {}
        self._cache_version = -1
        self._tcp_slots = threading.BoundedSemaphore(_TCP_MAX)

    @staticmethod
    def _bind(host: str, port: int) -> tuple[socket.socket, socket.socket]:
        last: OSError | None = None
        for _ in range(_BIND_ATTEMPTS if port == 0 else 1):
            udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                udp.bind((host, port))
                tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                tcp.bind((host, udp.getsockname()[1]))
                tcp.listen(64)
                return udp, tcp
            except OSError as exc:  # TCP's twin of the free UDP port is taken: another pair
                last = exc
                udp.close()
                tcp.close()
        raise OSError(f"cluster DNS: cannot bind UDP and TCP on {host}:{port}: {last}")

    @property
    def address(self) -> tuple[str, int]:
        return self.host, self.port

    def start(self) -> None:
        for target, name in ((self._udp_loop, "udp"), (self._tcp_loop, "tcp")):
            t = threading.Thread(target=target, name=f"nbkube-dns-{name}", daemon=True)
            t.start()
            self._threads.append(t)

    def stop(self) -> None:
        self._stop.set()
        for sock in (self._udp, self._tcp):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        for t in self._threads:
            t.join(timeout=2.0)
        self._pool.shutdown(wait=False, cancel_futures=True)

    # -- answering --------------------------------------------------------------------------------

    def answer(self, data: bytes) -> bytes | None:
        """The reply to one query packet for a cluster name; None: not ours, forward it."""
        version = self.zone.version
        if version != self._cache_version:
            self._cache = {}
            self._cache_version = version
        key = bytes(data[2:])
        hit = self._cache.get(key)
        if hit is not None:
            self.queries += 1
            return bytes(data[:2]) + hit
        reply = self._answer(data)
        if reply is not None and self.zone.version == version:
            if len(self._cache) >= _CACHE_MAX:
                self._cache = {}
            self._cache[key] = bytes(reply[2:])
        return reply

    def _answer(self, data: bytes) -> bytes | None:
        request = DNSRecord.parse(data)
        reply = request.reply()
        reply.header.ra = 1
        q = request.q
        qname = str(q.qname)
        if not self.zone.in_domain(qname):
            return None
        self.queries += 1
        ans = self.zone.lookup(qname)
        if ans is None:
            reply.header.rcode = RCODE.NXDOMAIN
            reply.add_auth(self._soa())
            return reply.pack()
        if ans.cname:
            reply.add_answer(RR(q.qname, QTYPE.CNAME, rdata=CNAME(ans.cname + "."), ttl=TTL))
        elif q.qtype in (QTYPE.A, QTYPE.ANY):
            for ip in ans.a:
                reply.add_answer(RR(q.qname, QTYPE.A, rdata=A(ip), ttl=TTL))
        if q.qtype in (QTYPE.SRV, QTYPE.ANY):
            weight = max(1, 100 // max(1, len(ans.srv)))
            for port, target in ans.srv:
                reply.add_answer(
                    RR(q.qname, QTYPE.SRV, rdata=SRV(priority=0, weight=weight, port=port, target=target + "."), ttl=TTL)
                )
                found = self.zone.lookup(target)
                for ip in found.a if found is not None else []:
                    reply.add_ar(RR(target + ".", QTYPE.A, rdata=A(ip), ttl=TTL))
        if not reply.rr:
            reply.add_auth(self._soa())
        return reply.pack()

    def _soa(self) -> RR:
        d = self.zone.domain + "."
        return RR(d, QTYPE.SOA, rdata=SOA("ns.dns." + d, "hostmaster." + d, (1, 7200, 1800, 86400, TTL)), ttl=TTL)

    def _forward(self, data: bytes) -> bytes:
        """Ask the upstreams in turn (UDP, then TCP if the answer was truncated); SERVFAIL if none can."""
        for host, port in self.upstreams:
            try:
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                    s.settimeout(self.forward_timeout)
                    s.sendto(data, (host, port))
                    reply, _ = s.recvfrom(65535)
                if DNSRecord.parse(reply).header.tc:
                    reply = self._forward_tcp(data, host, port)
                self.forwarded += 1
                return reply
            except (OSError, ValueError) as exc:
                log.warning("cluster DNS: upstream %s:%s did not answer: %s", host, port, exc)
        request = DNSRecord.parse(data)
        reply_rec = request.reply()
        reply_rec.header.rcode = RCODE.SERVFAIL
        return reply_rec.pack()

    def _forward_tcp(self, data: bytes, host: str, port: int) -> bytes:
        with socket.create_connection((host, port), timeout=self.forward_timeout) as s:
            s.sendall(struct.pack("!H", len(data)) + data)
            return _read_framed(s)

    def _handle(self, data: bytes) -> bytes | None:
        try:
            return self.answer(data)
        except Exception as exc:  # a malformed packet: dropped, as a resolver would
            log.warning("cluster DNS: cannot parse a query (%d bytes): %s", len(data), exc)
            return b""

    # -- transports -------------------------------------------------------------------------------

    def _udp_loop(self) -> None:
        while not self._stop.is_set():
            try:
                data, peer = self._udp.recvfrom(4096)
            except OSError:
                return
            if self._stop.is_set():
                return  # woken by stop()'s shutdown, not by a query
            reply = self._handle(data)
            if reply is None:
                self._pool.submit(self._forward_udp, data, peer)
            elif reply:
                self._send_udp(reply, peer)

    def _send_udp(self, reply: bytes, peer: tuple[str, int]) -> None:
        if len(reply) > 512:  # classic UDP limit: truncated, the client asks again over TCP
            rec = DNSRecord.parse(reply)
            rec.rr, rec.ar = [], []
            rec.header.tc = 1
            reply = rec.pack()
        with contextlib.suppress(OSError):
            self._udp.sendto(reply, peer)

    def _forward_udp(self, data: bytes, peer: tuple[str, int]) -> None:
        with contextlib.suppress(OSError):
            self._udp.sendto(self._forward(data), peer)

    def _tcp_loop(self) -> None:
        # a thread per connection (an idle one waits up to its timeout), bounded in number, apart
        # from the forwarding pool, so that idle TCP clients never hold up UDP forwarding
        while not self._stop.is_set():
            try:
                conn, _ = self._tcp.accept()
            except OSError:
                return
            if not self._tcp_slots.acquire(blocking=False):
                conn.close()  # too many at once: the client retries, as after a lost packet
                continue
            threading.Thread(target=self._serve_tcp, args=(conn,), name="nbkube-dns-tcp-conn", daemon=True).start()

    def _serve_tcp(self, conn: socket.socket) -> None:
        try:
            self._serve_tcp_conn(conn)
        finally:
            self._tcp_slots.release()

    def _serve_tcp_conn(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(5.0)
            while True:
                try:
                    data = _read_framed(conn)
                except (OSError, EOFError):
                    return
                reply = self._handle(data)
                if reply is None:
                    reply = self._forward(data)
                if not reply:
                    return
                with contextlib.suppress(OSError):
                    conn.sendall(struct.pack("!H", len(reply)) + reply)


def _read_framed(sock: socket.socket) -> bytes:
    """One length-prefixed DNS message from a TCP stream."""
    head = _read_exact(sock, 2)
    return _read_exact(sock, struct.unpack("!H", head)[0])


def _read_exact(sock: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise EOFError("connection closed")
        buf += chunk
    return buf
