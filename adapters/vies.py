"""VIES, the European Commission's VAT number confirmation, behind one small question.

`confirm(number)` answers True (registered), False (VIES says it is not valid) or None
(VIES could not say: down, slow, a member state's service unavailable, an answer we
cannot read). None is for the settings to decide (CALLBILL_VIES_UNAVAILABLE), never a
guess. Answers are cached per number for CALLBILL_VIES_CACHE_HOURS, both ways, so a burst
of one business customer's calls asks once; "could not say" is not cached. The number
never appears in a log line or error (it identifies a business customer).
"""
from __future__ import annotations

import time
from collections.abc import Callable

import logging

import httpx

log = logging.getLogger("callbill.vies")


class Vies:
    def __init__(self, base_url: str, timeout: float, cache_seconds: float,
                 clock: Callable[[], float] = time.monotonic, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.cache_seconds = cache_seconds
        self.clock = clock
        self._transport = transport
        self._client: httpx.AsyncClient | None = None
        self._cache: dict[str, tuple[float, bool]] = {}
        self.asked = 0  # questions that reached VIES (for tests and metrics)

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self.timeout, transport=self._transport,
                                             headers={"Accept": "application/json"})
        return self._client

    async def confirm(self, number: str) -> bool | None:
        """`number`: compact, with its 2-letter prefix (ATU13585627, EL094259216)."""
        hit = self._cache.get(number)
        if hit is not None and self.clock() - hit[0] < self.cache_seconds:
            return hit[1]
        country, rest = number[:2], number[2:]
        self.asked += 1
        try:
            r = await self._http().get(f"{self.base_url}/ms/{country}/vat/{rest}")
        except httpx.HTTPError as e:
            log.warning("VIES unreachable (%s)", type(e).__name__)
            return None
        if r.status_code != 200:
            log.warning("VIES answered %s", r.status_code)
            return None
        try:
            body = r.json()
        except ValueError:
            log.warning("VIES answered something that is not JSON")
            return None
        # a member state's own service down: VIES says so with userError, not with isValid false
        error = str(body.get("userError") or "VALID")
        if error not in ("VALID", "INVALID") or not isinstance(body.get("isValid"), bool):
            log.warning("VIES could not confirm (%s)", error[:40])
            return None
        valid = bool(body["isValid"])
        if len(self._cache) > 100_000:
            self._cache.clear()
        self._cache[number] = (self.clock(), valid)
        return valid

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None
