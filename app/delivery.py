"""The worker's delivery transports and message building, from settings.

Email goes by SMTP or by the Genesys agentless email API (CALLBILL_EMAIL_TRANSPORT);
SMS by Genesys agentless messaging when CALLBILL_SMS_FROM and Genesys credentials are
set (else No Email customers fall back to postal mail). Built once per worker by
app/bootstrap.py; each client is made on first use.
"""
from __future__ import annotations

from collections.abc import Awaitable, Callable
import email.policy
from email.charset import QP, Charset
from email.header import Header
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.utils import format_datetime, formataddr
from functools import cached_property

from adapters.email_dns import DeliverabilityCheck
from adapters.genesys import GenesysClient, RateLimiter
from adapters.smtp import SmtpTransport
from domain.messages import Email
from domain.redaction import Redactor
from runtime.settings import Settings
from schemas.events import utcnow


# compat32, not EmailMessage's default policy: that one parses every header through the
# header registry, which was a tenth of the worker's time in the end-to-end profile
# (BENCHMARKS.md). Non-ASCII header text is encoded here (RFC 2047), bodies quoted-printable.
_WIRE = email.policy.compat32.clone(linesep="\r\n")
_UTF8 = Charset("utf-8")
_UTF8.body_encoding = QP


def _header(value: str) -> str:
    return value if value.isascii() else Header(value, "utf-8").encode()


class Transports:
    def __init__(self, settings: Settings, genesys: Callable[[], GenesysClient | None]) -> None:
        self.settings = settings
        self._genesys = genesys

    @cached_property
    def _redactor(self) -> Redactor:
        return Redactor.with_patterns(self.settings.redact_patterns)

    def redactor(self) -> Redactor:
        return self._redactor

    @cached_property
    def smtp(self) -> SmtpTransport:
        s = self.settings
        return SmtpTransport(s.smtp_url, username=s.smtp_username,
                             password=s.smtp_password.get_secret_value() if s.smtp_password else None,
                             timeout=s.smtp_timeout, pool_size=s.smtp_connections)

    @cached_property
    def sender(self) -> GenesysClient | None:
        """The Genesys client for sends, with its rate limiter."""
        client = self._genesys()
        if client is not None and client.limiter is None:
            client.limiter = RateLimiter(self.settings.genesys_send_rate, 60.0)
        return client

    @cached_property
    def _dns_check(self) -> DeliverabilityCheck | None:
        s = self.settings
        if not s.email_dns_check:
            return None
        servers = [x.strip() for x in s.email_dns_servers.split(",") if x.strip()]
        return DeliverabilityCheck(s.email_dns_cache_ttl, nameservers=servers or None)

    def dns_check(self) -> DeliverabilityCheck | None:
        return self._dns_check

    def sms_enabled(self) -> bool:
        return bool(self.settings.sms_from) and self.sender is not None

    def check(self) -> None:
        """At start-up: refuse a configuration that could never send (named, no secret shown)."""
        s = self.settings
        if s.email_transport == "genesys" and self._genesys() is None:
            raise ValueError("CALLBILL_EMAIL_TRANSPORT=genesys needs CALLBILL_GENESYS_CLIENT_ID and _SECRET")
        if s.email_transport == "smtp":
            self.smtp  # noqa: B018 - raises ValueError naming a malformed CALLBILL_SMTP_URL
        if s.sms_from:
            from domain.delivery import e164

            e164(s.sms_from, s.sms_default_region)

    def mail_domain(self) -> str:
        return self.settings.mail_from.rsplit("@", 1)[-1]

    def build_message(self, to: str, mail: Email, message_id: str) -> bytes:
        """The message as it goes on the wire. Headers carry nothing about the customer but
        the address itself (no display name)."""
        s = self.settings
        m = MIMEMultipart("alternative")
        m["From"] = formataddr((s.mail_from_name, s.mail_from), charset="utf-8")
        m["To"] = to
        m["Subject"] = _header(mail.subject)
        m["Date"] = format_datetime(utcnow())
        m["Message-ID"] = message_id
        m["Auto-Submitted"] = "auto-generated"  # no auto-replies (out of office) back to us
        m.attach(MIMEText(mail.text, "plain", _UTF8))
        m.attach(MIMEText(mail.html, "html", _UTF8))
        return m.as_bytes(policy=_WIRE)

    async def send_email(self, to: str, mail: Email, message_id: str,
                         on_start: Callable[[], Awaitable[None]] | None = None) -> tuple[str, str]:
        """(transport, provider id). `on_start` is awaited right before the message leaves (over
        SMTP: once a connection is held, so an invoice still queued for one has no intent yet)."""
        s = self.settings
        if s.email_transport == "genesys":
            client = self.sender
            assert client is not None
            answer = await client.send_agentless_email(s.mail_from, s.mail_from_name, to, mail.subject, mail.text,
                                                       mail.html, on_start)
            return "genesys", str(answer.get("conversationId") or answer.get("id") or "")
        queue_id = await self.smtp.send(self.build_message(to, mail, message_id), s.mail_from, to, on_start)
        return "smtp", queue_id

    async def send_sms(self, to_e164: str, text: str,
                       on_start: Callable[[], Awaitable[None]] | None = None) -> tuple[str, str]:
        client = self.sender
        assert client is not None
        answer = await client.send_agentless_sms(self.settings.sms_from or "", to_e164, text, on_start)
        return "genesys", str(answer.get("conversationId") or answer.get("id") or "")
