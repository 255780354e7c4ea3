"""The worker's delivery transports and message building, from settings.

Email goes by SMTP or by the Genesys agentless email API (CALLBILL_EMAIL_TRANSPORT);
SMS by Genesys agentless messaging when CALLBILL_SMS_FROM and Genesys credentials are
set (else No Email customers fall back to postal mail).
"""
from __future__ import annotations

from collections.abc import Awaitable, Callable
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime
from functools import lru_cache

from adapters.email_dns import DeliverabilityCheck
from adapters.genesys import GenesysClient, RateLimiter
from adapters.smtp import SmtpTransport
from app import genesys
from runtime.settings import get_settings
from domain.messages import Email
from domain.redaction import Redactor
from schemas.events import utcnow


@lru_cache(maxsize=1)
def redactor() -> Redactor:
    return Redactor.with_patterns(get_settings().redact_patterns)


@lru_cache(maxsize=1)
def smtp() -> SmtpTransport:
    s = get_settings()
    return SmtpTransport(s.smtp_url, username=s.smtp_username,
                         password=s.smtp_password.get_secret_value() if s.smtp_password else None,
                         timeout=s.smtp_timeout, pool_size=s.smtp_connections)


@lru_cache(maxsize=1)
def sender() -> GenesysClient | None:
    """The Genesys client for sends, with its rate limiter."""
    client = genesys.client()
    if client is not None and client.limiter is None:
        client.limiter = RateLimiter(get_settings().genesys_send_rate, 60.0)
    return client


@lru_cache(maxsize=1)
def dns_check() -> DeliverabilityCheck | None:
    s = get_settings()
    if not s.email_dns_check:
        return None
    servers = [x.strip() for x in s.email_dns_servers.split(",") if x.strip()]
    return DeliverabilityCheck(s.email_dns_cache_ttl, nameservers=servers or None)


def sms_enabled() -> bool:
    return bool(get_settings().sms_from) and sender() is not None


def check_transports() -> None:
    """At start-up: refuse a configuration that could never send (named, no secret shown)."""
    s = get_settings()
    if s.email_transport == "genesys" and genesys.client() is None:
        raise ValueError("CALLBILL_EMAIL_TRANSPORT=genesys needs CALLBILL_GENESYS_CLIENT_ID and _SECRET")
    if s.email_transport == "smtp":
        smtp()  # raises ValueError naming a malformed CALLBILL_SMTP_URL
    if s.sms_from:
        from domain.delivery import e164

        e164(s.sms_from, s.sms_default_region)


def mail_domain() -> str:
    return get_settings().mail_from.rsplit("@", 1)[-1]


def build_message(to: str, mail: Email, message_id: str) -> EmailMessage:
    """Headers carry nothing about the customer but the address itself (no display name)."""
    s = get_settings()
    m = EmailMessage()
    m["From"] = Address(display_name=s.mail_from_name, addr_spec=s.mail_from)
    m["To"] = to
    m["Subject"] = mail.subject
    m["Date"] = format_datetime(utcnow())
    m["Message-ID"] = message_id
    m["Auto-Submitted"] = "auto-generated"  # no auto-replies (out of office) back to us
    m.set_content(mail.text)
    m.add_alternative(mail.html, subtype="html")
    return m


async def send_email(to: str, mail: Email, message_id: str,
                     on_start: Callable[[], Awaitable[None]] | None = None) -> tuple[str, str]:
    """(transport, provider id). `on_start` is awaited right before the message leaves (over
    SMTP: once a connection is held, so an invoice still queued for one has no intent yet)."""
    s = get_settings()
    if s.email_transport == "genesys":
        client = sender()
        assert client is not None
        answer = await client.send_agentless_email(s.mail_from, s.mail_from_name, to, mail.subject, mail.text,
                                                   mail.html, on_start)
        return "genesys", str(answer.get("conversationId") or answer.get("id") or "")
    queue_id = await smtp().send(build_message(to, mail, message_id), s.mail_from, to, on_start)
    return "smtp", queue_id


async def send_sms(to_e164: str, text: str, on_start: Callable[[], Awaitable[None]] | None = None) -> tuple[str, str]:
    client = sender()
    assert client is not None
    answer = await client.send_agentless_sms(get_settings().sms_from or "", to_e164, text, on_start)
    return "genesys", str(answer.get("conversationId") or answer.get("id") or "")
