"""What callbill says to a customer: subject, email bodies, SMS text, postal cover, acknowledgement.

Every sentence is a catalog message (domain/texts.py) in the customer's language, and
every amount and date is already formatted for their locale (domain/i18n.py) when it
arrives in `MessageData`. The guide's edge case 4: a subject never carries a customer
name or id, only the invoice number, with special characters removed and at most 78
characters, in every language; the subject message can name only `invoiceNumber` and
`seller`, so a name cannot reach it whatever a catalog says. Every text passes through
the redactor last, just before it leaves.
"""
from __future__ import annotations

import html
import re
import unicodedata
from dataclasses import asdict, dataclass
from string import Template

from domain.i18n import Localizer
from domain.redaction import Redactor

SUBJECT_MAX = 78
FACTURX_NOTE = "The PDF is also an e-invoice (Factur-X, EN 16931): your accounting system can read its embedded XML."
SMS_MAX = 765
SUBJECT_FIELDS = frozenset({"invoiceNumber", "seller"})

@dataclass(frozen=True)
class MessageData:
    invoiceNumber: str
    seller: str
    amount: str  # "$150.00", "150,00 €": the customer's locale
    dueDate: str  # the locale's medium date
    url: str
    expires: str  # in the customer's timezone and locale
    renewUrl: str
    contact: str
    name: str | None  # the customer's name (bodies only, never the subject)
    einvoiceUrl: str | None = None  # the UBL file's signed link, for customers who get one
    facturx: bool = False  # the PDF is a Factur-X e-invoice
    correcting: str | None = None  # a credit note: the number of the invoice it corrects


# the sentences that differ between an invoice and a credit note (message ids of domain/texts.py)
INVOICE_TEXTS = {
    "subject": "Your invoice {invoiceNumber}", "ready": "Your invoice {invoiceNumber} from {seller} is ready.",
    "amount": "Amount due", "download": "Download your invoice (PDF)", "title": "Invoice {number}",
    "questions": "Questions about this invoice? Contact {contact}.",
    "sms": "{seller}: your invoice {invoiceNumber} for {amount} is ready: {url}",
}
CREDIT_TEXTS = {
    "subject": "Your credit note {invoiceNumber}",
    "ready": "Your credit note {invoiceNumber} from {seller} is ready. It corrects invoice {correcting}.",
    "amount": "Amount credited", "download": "Download your credit note (PDF)", "title": "Credit note {number}",
    "questions": "Questions about this credit note? Contact {contact}.",
    "sms": "{seller}: your credit note {invoiceNumber} for {amount} is ready: {url}",
}


def texts_for(data: MessageData) -> dict[str, str]:
    return CREDIT_TEXTS if data.correcting else INVOICE_TEXTS


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




_SUBJECT_CHARS = re.compile(r"[^\w \-.#:/()]")  # \w is Unicode: letters and digits of every script


def clean_subject(text: str, limit: int = SUBJECT_MAX) -> str:
    """Letters and digits (any script), spaces and - _ . # : / ( ) only; one line; at most
    `limit` characters, cut at a word where there is one in the second half."""
    text = unicodedata.normalize("NFKC", text)
    text = "".join(" " if unicodedata.category(ch) in ("Cf", "Cc") else ch for ch in text)  # bidi marks, controls
    text = _SUBJECT_CHARS.sub(" ", text)
    text = re.sub(r"\s+", " ", text).strip()
    if len(text) > limit:
        cut = text[:limit]
        text = cut.rsplit(" ", 1)[0] if " " in cut[limit // 2:] else cut
    return text.strip()


def subject(loc: Localizer, invoice_number: str, seller: str, redact: Redactor, template: str | None = None,
            limit: int = SUBJECT_MAX, message: str = INVOICE_TEXTS["subject"]) -> str:
    """The email's subject: the operator's one template (invoices), else the catalog's message."""
    number, name = clean_subject(invoice_number, 40), clean_subject(seller, 40)
    if template is not None:
        text = Template(template).safe_substitute({"invoiceNumber": number, "seller": name})
    else:
        text = loc.t(message, invoiceNumber=number)
    return clean_subject(redact(text), limit) or number


def _greeting(loc: Localizer, name: str | None) -> str:
    return loc.t("Hello {name},", name=name) if name else loc.t("Hello,")


def invoice_email(data: MessageData, loc: Localizer, redact: Redactor, subject_template: str | None = None) -> Email:
    """The invoice's email, or a credit note's (`data.correcting` set: its own subject and
    sentences, no due date; CALLBILL_MAIL_SUBJECT is for invoices only)."""
    t, say = loc.t, texts_for(data)
    credit = data.correcting is not None
    amounts = f"{t(say['amount'])}: {data.amount}" + ("" if credit else f"\n{t('Due date')}: {data.dueDate}")
    text = "\n\n".join([
        _greeting(loc, data.name),
        t(say["ready"], invoiceNumber=data.invoiceNumber, seller=data.seller, correcting=data.correcting or ""),
        amounts,
        f"{t('Download it here (the link is valid until {expires}):', expires=data.expires)}\n{data.url}",
        f"{t('If the link has expired, this one always gives you a fresh link:')}\n{data.renewUrl}",
        *([f"{t('The e-invoice (XML, EN 16931) for your accounting system:')}\n{data.einvoiceUrl}"]
          if data.einvoiceUrl else []),
        *([t(FACTURX_NOTE)] if data.facturx else []),
        t(say["questions"], contact=data.contact),
    ]) + "\n"
    e = {k: html.escape(v, quote=True) if isinstance(v, str) else v for k, v in asdict(data).items()}
    h = lambda s: html.escape(s, quote=True)  # noqa: E731 - a translation is text, never markup
    direction = "rtl" if loc.rtl else "ltr"
    # the number in bold: placeholders survive escaping, so the markup goes in after it
    ready = h(t(say["ready"])).format(
        invoiceNumber=f"<strong>{e['invoiceNumber']}</strong>", seller=e["seller"], correcting=e["correcting"] or "")
    due = "" if credit else (f'\n<tr><td style="padding: 2px 12px;">{h(t("Due date"))}</td>'
                             f"<td><bdi>{e['dueDate']}</bdi></td></tr>")
    einvoice = (f'\n<p><a href="{e["einvoiceUrl"]}">{h(t("Download the e-invoice (XML)"))}</a></p>'
                if data.einvoiceUrl else "") + (f"\n<p>{h(t(FACTURX_NOTE))}</p>" if data.facturx else "")
    page = f"""<!DOCTYPE html>
<html lang="{loc.tag}" dir="{direction}"><head><meta charset="utf-8"><title>{h(t(say["title"], number=data.invoiceNumber))}</title></head>
<body style="font-family: Arial, sans-serif; color: #222;">
<p>{h(_greeting(loc, data.name))}</p>
<p>{ready}</p>
<table style="border-collapse: collapse;">
<tr><td style="padding: 2px 12px;">{h(t(say["amount"]))}</td><td><strong><bdi>{e['amount']}</bdi></strong></td></tr>{due}
</table>
<p><a href="{e['url']}">{h(t(say["download"]))}</a><br>
<small>{h(t("The link is valid until {expires}.", expires=data.expires))} <a href="{e['renewUrl']}">{h(t("Get a fresh link"))}</a></small></p>{einvoice}
<p>{h(t(say["questions"], contact=data.contact))}</p>
</body></html>
"""
    return Email(subject=subject(loc, data.invoiceNumber, data.seller, redact, None if credit else subject_template,
                                 message=say["subject"]),
                 text=redact(text), html=redact(page))


def ack_email(seller: str, loc: Localizer, redact: Redactor) -> Email:
    t = loc.t
    body = t("Thank you for contacting {seller}. We have received your request and are preparing your invoice; "
             "it will follow in a separate message shortly.", seller=seller)
    title = t("We are preparing your invoice")
    direction = "rtl" if loc.rtl else "ltr"
    page = f"""<!DOCTYPE html>
<html lang="{loc.tag}" dir="{direction}"><head><meta charset="utf-8"><title>{html.escape(title)}</title></head>
<body style="font-family: Arial, sans-serif; color: #222;">
<p>{html.escape(t("Hello,"))}</p>
<p>{html.escape(body)}</p>
</body></html>
"""
    return Email(subject=clean_subject(title), text=redact(f"{t('Hello,')}\n\n{body}\n"), html=redact(page))


def fit_sms(text: str, limit: int = SMS_MAX) -> str:
    text = re.sub(r"\s+", " ", text).strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def invoice_sms(data: MessageData, loc: Localizer, redact: Redactor) -> str:
    """The renew link, not the signed one: it is short, and never expires for the customer."""
    return fit_sms(redact(loc.t(texts_for(data)["sms"], seller=data.seller, invoiceNumber=data.invoiceNumber, amount=data.amount,
                                url=data.renewUrl)))


def ack_sms(seller: str, loc: Localizer, redact: Redactor) -> str:
    return fit_sms(redact(loc.t("{seller}: we have received your request. Your invoice will follow shortly.",
                                seller=seller)))


def postal_cover(data: MessageData, loc: Localizer, redact: Redactor) -> str:
    """The print vendor's cover text for the letter (no link: the paper is the invoice)."""
    if data.correcting:
        return redact(loc.t("Please find enclosed credit note {invoiceNumber} from {seller}, correcting invoice "
                            "{correcting}. Amount credited: {amount}.", invoiceNumber=data.invoiceNumber,
                            seller=data.seller, correcting=data.correcting, amount=data.amount))
    return redact(loc.t("Please find enclosed invoice {invoiceNumber} from {seller}. Amount due: {amount}, by {date}.",
                        invoiceNumber=data.invoiceNumber, seller=data.seller, amount=data.amount, date=data.dueDate))
