"""The deliverability check against a real DNS server on loopback (tests/dns_server.py)."""
from __future__ import annotations

import asyncio
import time

from adapters.email_dns import DeliverabilityCheck, resolver_for
from dns_server import ZONES, LocalDns
from kafka_harness import free_port


def problems(check: DeliverabilityCheck, addresses: list[str]) -> list[str | None]:
    async def go():
        return [await check.problem(a) for a in addresses]
    return asyncio.run(go())


def test_mx_a_fallback_null_mx_and_missing_domains():
    with LocalDns(ZONES) as dns:
        check = DeliverabilityCheck(ttl=60, timeout=3, nameservers=[dns.address])
        got = problems(check, ["jane@callbill-ok.com", "ops@callbill-a-only.com", "x@callbill-null-mx.com",
                               "x@callbill-dead.com"])
    assert got[:2] == [None, None]
    assert got[2] == got[3] == "the domain does not accept email (no MX or A record)"


def test_answers_are_cached_per_domain():
    no = "the domain does not accept email (no MX or A record)"
    with LocalDns(ZONES) as dns:
        check = DeliverabilityCheck(ttl=60, timeout=3, nameservers=[dns.address])
        got = problems(check, ["a@callbill-ok.com", "b@CALLBILL-OK.com", "c@callbill-dead.com", "d@callbill-dead.com"])
        asked = dict(dns.resolver.asked)
    assert got == [None, None, no, no]
    assert asked[("callbill-ok.com", "MX")] == 1  # two addresses, one question
    assert asked[("callbill-dead.com", "MX")] == 1


def test_a_resolver_that_does_not_answer_lets_the_send_decide_and_is_asked_again_soon():
    silent = f"127.0.0.1:{free_port()}"  # nothing listens there
    check = DeliverabilityCheck(ttl=3600, timeout=1, nameservers=[silent], failure_ttl=0.5)
    started = time.monotonic()
    assert problems(check, ["a@callbill-dead.com"]) == [None]  # DNS down: not the customer's fault
    assert time.monotonic() - started < 10
    time.sleep(0.6)  # remembered briefly only: once DNS answers, the real answer counts
    with LocalDns(ZONES) as dns:
        check.resolver = resolver_for([dns.address], 1)
        assert problems(check, ["b@callbill-dead.com"]) == ["the domain does not accept email (no MX or A record)"]
