"""What callbill says to a customer: subject, email bodies, SMS text, postal job, acknowledgement.

The guide's edge case 4: a subject never carries a customer name or id, only the
invoice number, with special characters removed and at most 78 characters. Templates
get their data from `MessageData`; the subject template can name only `invoiceNumber`
and `seller`, so a customer's name cannot reach it whatever the template says. Every text
passes through the redactor last, just before it leaves.
"""
from __future__ import annotations

import html
import re
import unicodedata
from dataclasses import asdict, dataclass
from datetime import datetime
from string import Template
from zoneinfo import ZoneInfo

from domain.money import round_money
from domain.redaction import Redactor

SUBJECT_MAX = 78
SMS_MAX = 765
SUBJECT_FIELDS = frozenset({"invoiceNumber", "seller"})

DEFAULT_SUBJECT = "Your invoice $invoiceNumber"
ACK_SUBJECT = "We are preparing your invoice"

INVOICE_TEXT = """\
Hello${greeting},

your invoice $invoiceNumber from $seller is ready.

Amount due: $amount
Due date:   $dueDate

Download it here (the link is valid until $expires):
$url

If the link has expired, this one always gives you a fresh link:
$renewUrl

Questions about this invoice? Contact $contact.
"""

INVOICE_HTML = """\
<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Invoice $invoiceNumber</title></head>
<body style="font-family: Arial, sans-serif; color: #222;">
<p>Hello${greeting},</p>
<p>your invoice <strong>$invoiceNumber</strong> from $seller is ready.</p>
<table style="border-collapse: collapse;">
<tr><td style="padding: 2px 12px 2px 0;">Amount due</td><td><strong>$amount</strong></td></tr>
<tr><td style="padding: 2px 12px 2px 0;">Due date</td><td>$dueDate</td></tr>
</table>
<p><a href="$url">Download your invoice (PDF)</a><br>
<small>The link is valid until $expires. After that, <a href="$renewUrl">get a fresh link</a>.</small></p>
<p>Questions about this invoice? Contact $contact.</p>
</body></html>
"""

INVOICE_SMS = "$seller: your invoice $invoiceNumber for $amount is ready: $renewUrl"

ACK_TEXT = """\
Hello,

thank you for contacting $seller. We received your request and are preparing your
invoice; it will follow in a separate message shortly.
"""

ACK_HTML = """\
<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>We are preparing your invoice</title></head>
<body style="font-family: Arial, sans-serif; color: #222;">
<p>Hello,</p>
<p>thank you for contacting $seller. We received your request and are preparing your
invoice; it will follow in a separate message shortly.</p>
</body></html>
"""

ACK_SMS = "$seller: we received your request. Your invoice will follow shortly."


@dataclass(frozen=True)
class MessageData:
    invoiceNumber: str
    seller: str
    amount: str  # "USD 150.00"
    dueDate: str
    url: str
    expires: str  # in the customer's timezone
    renewUrl: str
    contact: str
    greeting: str  # "" or " Jane Doe" (bodies only, never the subject)


@dataclass(frozen=True)
class Email:
    subject: str
    text: str
    html: str


class TemplateError(ValueError):
    pass


def check_template(text: str, allowed: frozenset[str], name: str) -> str:
    """Refuse (at start-up) a template naming a field it may not use."""
    for m in Template.pattern.finditer(text):
        field = m.group("named") or m.group("braced")
        if m.group("invalid") is not None:
            raise TemplateError(f"template {name}: a '$' not followed by a field name")
        if field and field not in allowed:
            raise TemplateError(f"template {name} names ${field}; allowed: {', '.join(sorted(allowed))}")
    return text


BODY_FIELDS = frozenset(MessageData.__dataclass_fields__)


def clean_subject(text: str, limit: int = SUBJECT_MAX) -> str:
    """Letters, digits, spaces and - _ . # : / ( ) only; one line; at most `limit` characters."""
    text = unicodedata.normalize("NFKC", text)
    text = re.sub(r"[^\w \-.#:/()]", " ", text, flags=re.ASCII)
    text = re.sub(r"\s+", " ", text).strip()
    if len(text) > limit:
        cut = text[:limit]
        text = cut.rsplit(" ", 1)[0] if " " in cut[limit // 2:] else cut
    return text.strip()


def subject(template: str, invoice_number: str, seller: str, redact: Redactor, limit: int = SUBJECT_MAX) -> str:
    values = {"invoiceNumber": clean_subject(invoice_number, 40), "seller": clean_subject(seller, 40)}
    return clean_subject(redact(Template(template).safe_substitute(values)), limit) or "Your invoice"


def amount_text(currency: str, total) -> str:
    return f"{currency} {round_money(total, currency):,f}"


def local_time(at: datetime, tz: str | None) -> str:
    zone = ZoneInfo(tz) if tz else ZoneInfo("UTC")
    local = at.astimezone(zone)
    return local.strftime("%Y-%m-%d %H:%M ") + (local.tzname() or "UTC")


def invoice_email(data: MessageData, redact: Redactor, subject_template: str = DEFAULT_SUBJECT,
                  text_template: str = INVOICE_TEXT, html_template: str = INVOICE_HTML) -> Email:
    values = asdict(data)
    escaped = {k: html.escape(v, quote=True) for k, v in values.items()}
    return Email(
        subject=subject(subject_template, data.invoiceNumber, data.seller, redact),
        text=redact(Template(text_template).safe_substitute(values)),
        html=redact(Template(html_template).safe_substitute(escaped)),
    )


def ack_email(seller: str, redact: Redactor) -> Email:
    values = {"seller": seller}
    escaped = {"seller": html.escape(seller)}
    return Email(subject=clean_subject(ACK_SUBJECT), text=redact(Template(ACK_TEXT).safe_substitute(values)),
                 html=redact(Template(ACK_HTML).safe_substitute(escaped)))


def fit_sms(text: str, limit: int = SMS_MAX) -> str:
    text = re.sub(r"\s+", " ", text).strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def invoice_sms(data: MessageData, redact: Redactor, template: str = INVOICE_SMS) -> str:
    """The renew link, not the signed one: it is short, and never expires for the customer."""
    return fit_sms(redact(Template(template).safe_substitute(asdict(data))))


def ack_sms(seller: str, redact: Redactor) -> str:
    return fit_sms(redact(Template(ACK_SMS).safe_substitute({"seller": seller})))
