"""Amazon SNS's side of the SES notifications: signing certificates and subscription confirmation.

A certificate is fetched only from a URL the host pattern allows (AWS's own hosts unless
CALLBILL_SNS_CERT_HOSTS says otherwise), and kept: SNS signs with one certificate for a
long time, so a burst of bounces costs one fetch. Confirming a subscription is a GET of its
SubscribeURL, allowed on the same hosts only (or the worker would fetch any URL it is sent).
"""
from __future__ import annotations

import httpx

from domain.provider_auth import SignatureError, sns_url_allowed

MAX_CERT_BYTES = 64 * 1024
MAX_CACHED = 32


class SnsClient:
    def __init__(self, host_pattern: str, timeout: float = 5.0) -> None:
        self.host_pattern = host_pattern
        self.timeout = timeout
        self._certs: dict[str, bytes] = {}
        self._http: httpx.AsyncClient | None = None

    def _client(self) -> httpx.AsyncClient:
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=self.timeout, follow_redirects=False)
        return self._http

    async def certificate(self, url: str) -> bytes:
        if not sns_url_allowed(url, self.host_pattern, certificate=True):
            raise SignatureError("SigningCertURL is not an https .pem on an allowed SNS host")
        if url not in self._certs:
            try:
                r = await self._client().get(url)
            except httpx.HTTPError as e:
                raise SignatureError(f"the signing certificate could not be fetched ({type(e).__name__})") from None
            if r.status_code != 200 or len(r.content) > MAX_CERT_BYTES:
                raise SignatureError(f"the signing certificate could not be fetched (HTTP {r.status_code})")
            if len(self._certs) >= MAX_CACHED:
                self._certs.pop(next(iter(self._certs)))
            self._certs[url] = r.content
        return self._certs[url]

    async def confirm(self, subscribe_url: str) -> None:
        """Visit SubscribeURL; raises SignatureError if it is not SNS's or SNS refuses."""
        if not sns_url_allowed(subscribe_url, self.host_pattern):
            raise SignatureError("SubscribeURL is not https on an allowed SNS host")
        try:
            r = await self._client().get(subscribe_url)
        except httpx.HTTPError as e:
            raise SignatureError(f"the subscription could not be confirmed ({type(e).__name__})") from None
        if r.status_code != 200:
            raise SignatureError(f"the subscription could not be confirmed (HTTP {r.status_code})")

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()
