"""The optional deliverability check: does the address's domain accept mail (MX, or A/AAAA)?

email-validator asks DNS (blocking, so it runs in a thread); answers are cached per
domain, so a burst of invoices to one company costs one lookup. A DNS failure (timeout,
no resolver) is not the customer's fault: it counts as fine, the send decides, and it is
remembered only for `failure_ttl` so the check works again once DNS is back.
"""
from __future__ import annotations

import asyncio
import time

import dns.nameserver
import dns.resolver
from email_validator import EmailNotValidError, EmailUndeliverableError, validate_email


_RESOLVER_TROUBLE = object()


def resolver_for(nameservers: list[str], timeout: float) -> dns.resolver.Resolver:
    """A resolver asking only these servers ("host" or "host:port"), not /etc/resolv.conf."""
    r = dns.resolver.Resolver(configure=False)
    servers = []
    for item in (x.strip() for x in nameservers):
        host, port = item.split(":") if item.count(":") == 1 else (item, "53")  # IPv6: no port
        servers.append(dns.nameserver.Do53Nameserver(host, int(port)))
    r.nameservers = servers
    r.lifetime = timeout
    return r


class DeliverabilityCheck:
    def __init__(self, ttl: float = 3600.0, timeout: float = 5.0, nameservers: list[str] | None = None,
                 failure_ttl: float = 60.0) -> None:
        self.ttl = ttl
        self.failure_ttl = min(failure_ttl, ttl)
        self.timeout = timeout
        self.resolver = resolver_for(nameservers, timeout) if nameservers else None
        self._cache: dict[str, tuple[str | None, float]] = {}

    async def problem(self, address: str) -> str | None:
        domain = address.rsplit("@", 1)[-1].lower()
        hit = self._cache.get(domain)
        if hit and hit[1] > time.monotonic():
            return hit[0]
        answer = await asyncio.to_thread(self._check, address)
        if answer is _RESOLVER_TROUBLE:
            self._cache[domain] = (None, time.monotonic() + self.failure_ttl)
            return None
        self._cache[domain] = (answer, time.monotonic() + self.ttl)  # type: ignore[assignment]
        return answer  # type: ignore[return-value]

    def _check(self, address: str) -> object:
        try:
            if self.resolver is not None:
                found = validate_email(address, check_deliverability=True, dns_resolver=self.resolver)
            else:
                found = validate_email(address, check_deliverability=True, timeout=max(1, int(self.timeout)))
            # a timeout or no answering server comes back as "unknown", with no MX found
            return None if getattr(found, "mx", None) else _RESOLVER_TROUBLE
        except EmailUndeliverableError as e:
            if "error while checking" in str(e):
                return _RESOLVER_TROUBLE
            return "the domain does not accept email (no MX or A record)"
        except EmailNotValidError:
            return "the address is not valid"
        except Exception:  # noqa: BLE001 - resolver trouble: let the send decide
            return _RESOLVER_TROUBLE
