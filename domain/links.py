"""Signed links to invoice documents: expiring URLs and the long-lived renew token.

A document link expires (CALLBILL_LINK_TTL, 24 h by default); the email also carries a
renew link, `/invoices/<number>/link?token=…`, whose token names the object key and is
signed, so any worker can turn it into a fresh link without a lookup, and a tampered
token (another invoice's key, a changed number) is refused.
"""
from __future__ import annotations

import base64
import hashlib
import hmac


def _mac(secret: bytes, *parts: str) -> str:
    return hmac.new(secret, "\n".join(parts).encode(), hashlib.sha256).hexdigest()


def sign(secret: bytes, key: str, expires: int) -> str:
    return _mac(secret, "get", key, str(expires))


def valid(secret: bytes, key: str, expires: int, signature: str, now: float) -> bool:
    return now < expires and hmac.compare_digest(sign(secret, key, expires), signature)


def renew_token(secret: bytes, key: str) -> str:
    encoded = base64.urlsafe_b64encode(key.encode()).decode().rstrip("=")
    return f"{encoded}.{_mac(secret, 'renew', key)[:32]}"


def key_of_renew_token(secret: bytes, token: str) -> str | None:
    encoded, _, mac = token.partition(".")
    try:
        key = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode()
    except (ValueError, UnicodeDecodeError):
        return None
    return key if mac and hmac.compare_digest(_mac(secret, "renew", key)[:32], mac) else None


def document_key(number: str, issue_year: int, issue_month: int, extension: str = "pdf") -> str:
    """invoices/<yyyy>/<mm>/<invoiceNumber>.pdf (deterministic: a repeated PUT is harmless);
    the e-invoice beside it is the same key with .xml."""
    if not number or "/" in number or number.startswith("."):
        raise ValueError("invoice number cannot be part of an object key")
    return f"invoices/{issue_year:04d}/{issue_month:02d}/{number}.{extension}"
