"""A real DNS server on loopback (dnslib, UDP) for the deliverability check.

It answers from a small zone table and counts the questions it was asked, so a test can
see what the resolver really sent. Nothing here leaves the machine.
"""
from __future__ import annotations

import threading
from collections import Counter

from dnslib import QTYPE, RCODE, RR, A, DNSRecord, MX
from dnslib.server import BaseResolver, DNSLogger, DNSServer

from kafka_harness import free_port


class ZoneResolver(BaseResolver):
    def __init__(self, zones: dict[str, dict[str, list]]) -> None:
        self.zones = {name.lower().rstrip("."): records for name, records in zones.items()}
        self.asked: Counter = Counter()
        self._lock = threading.Lock()

    def resolve(self, request: DNSRecord, handler) -> DNSRecord:
        reply = request.reply()
        name = str(request.q.qname).lower().rstrip(".")
        qtype = QTYPE[request.q.qtype]
        with self._lock:
            self.asked[(name, qtype)] += 1
        zone = self.zones.get(name)
        if zone is None:
            reply.header.rcode = RCODE.NXDOMAIN
            return reply
        for rdata in zone.get(qtype, []):
            reply.add_answer(RR(request.q.qname, request.q.qtype, rdata=rdata, ttl=60))
        return reply


class LocalDns:
    """`with LocalDns({...}) as dns: dns.address` -> "127.0.0.1:port"."""

    def __init__(self, zones: dict[str, dict[str, list]]) -> None:
        self.resolver = ZoneResolver(zones)
        self.port = free_port()
        self.server = DNSServer(self.resolver, address="127.0.0.1", port=self.port,
                                logger=DNSLogger(log="-request,-reply,-truncated,-error,-recv,-send,-data", prefix=False))

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def __enter__(self) -> "LocalDns":
        self.server.start_thread()
        return self

    def __exit__(self, *exc) -> None:
        self.server.stop()


ZONES = {
    "callbill-ok.com": {"MX": [MX("mx.callbill-ok.com", 10)], "A": [A("192.0.2.10")]},
    "mx.callbill-ok.com": {"A": [A("192.0.2.10")]},
    "callbill-a-only.com": {"A": [A("93.184.215.14")]},  # no MX: a (public) A record is the old fallback
    "callbill-null-mx.com": {"MX": [MX(".", 0)]},  # RFC 7505: this domain takes no mail
    # callbill-dead.com is not in the table: NXDOMAIN
}
