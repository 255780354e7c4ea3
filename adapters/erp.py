"""The ERP's invoice API: `POST /v1/billing/generate-invoice` (the guide's contract).

One attempt per call; the billing agent owns retries and parking. Every request carries
`Idempotency-Key: <interactionId>`, so any number of attempts creates one invoice.
Failures are classified, never raised raw: `ErpRetryable` (5xx, 429, timeouts,
connection errors) or `ErpRejected` (4xx: a person has to look). Errors carry the ERP's
error code and a bounded message, never the request body.
"""
from __future__ import annotations

import json
from decimal import Decimal

import httpx
from pydantic import ValidationError

from adapters.http import retry_after_seconds
from schemas.invoices import ErpInvoiceRequest, ErpInvoiceResponse, erp_json

PATH = "/v1/billing/generate-invoice"


class ErpRetryable(Exception):
    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


class ErpRejected(Exception):
    def __init__(self, status: int, error_code: str, message: str) -> None:
        super().__init__(f"ERP answered {status} {error_code}")
        self.status = status
        self.error_code = error_code
        self.message = message


class ErpClient:
    def __init__(self, base_url: str, token: str | None, timeout: float = 5.0, max_connections: int = 64) -> None:
        self._token = token
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/"), timeout=timeout,
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def generate_invoice(self, req: ErpInvoiceRequest) -> ErpInvoiceResponse:
        headers = {"Content-Type": "application/json", "Idempotency-Key": req.sourceInteractionId}
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        try:
            resp = await self._http.post(PATH, content=erp_json(req), headers=headers)
        except httpx.TimeoutException:
            raise ErpRetryable("ERP_TIMEOUT") from None
        except httpx.TransportError:
            raise ErpRetryable("ERP_UNREACHABLE") from None
        status = resp.status_code
        if status == 429 or status >= 500:
            raise ErpRetryable(f"ERP_HTTP_{status}", retry_after_seconds(resp.headers.get("Retry-After")))
        if status >= 300:
            code, message = _error_of(resp)
            raise ErpRejected(status, code, message)
        try:
            return ErpInvoiceResponse.model_validate(json.loads(resp.content, parse_float=Decimal))
        except (ValueError, ValidationError):
            raise ErpRejected(status, "ERP_BAD_RESPONSE", "the ERP's answer is not a valid invoice response") from None


def _error_of(resp: httpx.Response) -> tuple[str, str]:
    try:
        body = resp.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        err = body.get("error") if isinstance(body.get("error"), dict) else body
        code = str(err.get("error_code") or err.get("code") or f"HTTP_{resp.status_code}")[:64]
        message = str(err.get("message") or err.get("error_description") or "")[:300]
        return code, message
    return f"HTTP_{resp.status_code}", ""
