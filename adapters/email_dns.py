"""The optional deliverability check: does the address's domain accept mail (MX, or A/AAAA)?

email-validator asks DNS (blocking, so it runs in a thread); answers are cached per
domain, so a burst of invoices to one company costs one lookup. A DNS failure (timeout,
no resolver) is not the customer's fault: it counts as fine, the send decides.
"""
from __future__ import annotations

import asyncio
import time

from email_validator import EmailNotValidError, EmailUndeliverableError, validate_email


class DeliverabilityCheck:
    def __init__(self, ttl: float = 3600.0, timeout: float = 5.0) -> None:
        self.ttl = ttl
        self.timeout = timeout
        self._cache: dict[str, tuple[str | None, float]] = {}

    async def problem(self, address: str) -> str | None:
        domain = address.rsplit("@", 1)[-1].lower()
        hit = self._cache.get(domain)
        if hit and hit[1] > time.monotonic():
            return hit[0]
        answer = await asyncio.to_thread(self._check, address)
        self._cache[domain] = (answer, time.monotonic() + self.ttl)
        return answer

    def _check(self, address: str) -> str | None:
        try:
            validate_email(address, check_deliverability=True, timeout=self.timeout)
            return None
        except EmailUndeliverableError:
            return "the domain does not accept email (no MX or A record)"
        except EmailNotValidError:
            return "the address is not valid"
        except Exception:  # noqa: BLE001 - resolver trouble: let the send decide
            return None
