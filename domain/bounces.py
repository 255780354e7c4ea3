"""Bounces and complaints, from whichever channel reports them (pure: no Kafka, no HTTP).

An invoice email can fail after the SMTP hand-off succeeded; the news comes back later as
an RFC 3464 delivery status notification in the bounce mailbox, or as a provider webhook
(Amazon SES via SNS, SendGrid's event webhook). All of them become `BounceReport`s, so
the rest of the pipeline needs one rule per kind, not one per provider:
- hard = the address will not work (5.x.x, SES Permanent, SendGrid bounce/dropped);
- soft = it may work later (4.x.x, delayed, SES Transient/Undetermined, SendGrid
  deferred/blocked);
- complaint = the recipient marked it as spam.

Our own Message-ID, `<{interactionId}.{kind}@{domain}>`, is what ties a report back to
an interaction; `interaction_of` reads it, `message_id` writes it.

Reports carry the recipient address (the caller needs it) but the diagnostic text has
addresses redacted and no exception message names one: these end up in logs.
"""
from __future__ import annotations

import base64
import json
import quopri
import re
from dataclasses import dataclass
from email import message_from_bytes
from email.message import Message
from email.parser import HeaderParser
from email.policy import compat32
from typing import Any, Literal

Kind = Literal["hard", "soft", "complaint"]

MAX_DIAGNOSTIC = 200

_DSN_TYPES = frozenset({"message/delivery-status", "message/global-delivery-status"})
_ORIGINAL_TYPES = frozenset({"text/rfc822-headers", "message/rfc822",
                             "message/global", "message/global-headers"})
_ENCODED = frozenset({"base64", "quoted-printable"})
_STATUS = re.compile(r"(?<![\d.])[245]\.\d{1,3}\.\d{1,3}(?!\.?\d)")  # not inside an IP address
_TYPE_PREFIX = re.compile(r"^\s*[A-Za-z0-9][A-Za-z0-9-]*\s*;\s*")
_ADDRESS_IN_TEXT = re.compile(r"<?(?:\"[^\"\r\n]*\"|[^\s<>@,;:\"'()\[\]]+)@[^\s<>@,;:\"'()\[\]]+>?")
_AT_TOKEN = re.compile(r"\S*@\S*")  # whatever still has an @ after that: redact, don't guess
_MSGID = re.compile(r"<[^<>\s]+>")
# a credit note's record id (`<interactionId>~<creditNumber>`) has a '~'
_OUR_MSGID = re.compile(r"<([A-Za-z0-9_~-]+)\.(invoice|ack)@([^<>@\s]+)>")
_INTERACTION_ID = re.compile(r"[A-Za-z0-9_~-]+")
_DOMAIN = re.compile(r"[^<>@\s]+")
_KINDS = ("invoice", "ack")


@dataclass(frozen=True)
class BounceReport:
    address: str
    kind: Kind
    status: str | None
    diagnostic: str | None
    messageId: str | None
    source: str
    eventId: str | None = None  # the provider's id of this event: a retry or a replay carries the same


class BounceParseError(ValueError):
    """The input is not a report we understand; the message never names an address."""


# --- shared normalisation -----------------------------------------------------------

def _clean(text: str) -> str:
    """Undo surrogateescape from 8-bit headers so the text survives JSON/Avro later."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _address(value: Any) -> str | None:
    """One spelling per mailbox, so reports about the same address compare equal."""
    if not isinstance(value, str):
        return None
    text = _TYPE_PREFIX.sub("", _clean(value).strip())
    bracketed = re.findall(r"<([^<>]*)>", text)
    if bracketed:
        text = bracketed[-1]
    text = text.strip().strip("<>").strip().lower()
    if not text or "@" not in text or any(c.isspace() for c in text):
        return None
    local, _, domain = text.rpartition("@")
    return text if local and domain else None


def _status(*texts: Any) -> str | None:
    for text in texts:
        if isinstance(text, str):
            m = _STATUS.search(text)
            if m:
                return m.group(0)
    return None


def _diagnostic(value: Any, typed: bool = True) -> str | None:
    """Short and free of addresses: it is for people reading logs, not for routing.

    typed: the value is an RFC 3464 `diagnostic-type; text` (DSN, SES), drop the type."""
    if not isinstance(value, str):
        return None
    text = _clean(value)
    text = " ".join((_TYPE_PREFIX.sub("", text) if typed else text).split())
    text = _AT_TOKEN.sub("<address>", _ADDRESS_IN_TEXT.sub("<address>", text))
    if len(text) > MAX_DIAGNOSTIC:
        text = text[:MAX_DIAGNOSTIC - 1].rstrip() + "…"
    return text or None


def _message_id(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    text = " ".join(_clean(value).split())
    m = _MSGID.search(text)
    if m:
        return m.group(0)
    return f"<{text}>" if text and " " not in text and "@" in text else None


def classify(action: str | None, status: str | None) -> Kind | None:
    """RFC 3464 action + RFC 3463 class; None means "not a bounce"."""
    act = (action or "").strip().lower().split(" ", 1)[0].split("(", 1)[0]
    code = _status(status)
    cls = code[0] if code else None
    if act == "failed" and cls == "5":
        return "hard"
    if cls == "4" or act == "delayed":
        return "soft"
    if act == "failed" and cls is None:
        return "hard"
    return None


# --- RFC 3464 delivery status notifications -----------------------------------------

def _field(msg: Message, name: str) -> str | None:
    value = msg.get(name)
    if value is None:
        return None
    text = " ".join(_clean(str(value)).split())
    return text or None


def _flatten(msg: Message) -> str:
    """Headers as received plus body; the generator would refuse malformed headers."""
    head = "".join(f"{name}: {value}\n" for name, value in msg.raw_items())
    body = msg.get_payload()
    return head + "\n" + (body if isinstance(body, str) else "\n".join(_flatten(m) for m in body or []))


def _part_text(part: Message) -> str:
    """The part's body as text, whatever shape the parser left it in."""
    cte = (_field(part, "Content-Transfer-Encoding") or "").lower()
    payload = part.get_payload()
    if isinstance(payload, list):
        # the parser split it into sub-messages; put the text back together
        text = "\n".join(_flatten(m) for m in payload)
        if cte == "base64":
            try:
                data = base64.b64decode(re.sub(r"[^A-Za-z0-9+/]", "", text) + "==")
            except ValueError:
                raise BounceParseError("delivery status part is not valid base64") from None
        elif cte == "quoted-printable":
            data = quopri.decodestring(text.encode("ascii", "replace"))
        else:
            return _clean(text)
        return data.decode("utf-8", "replace")
    data = part.get_payload(decode=True)
    if isinstance(data, bytes):
        try:
            return data.decode(part.get_content_charset() or "utf-8", "replace")
        except LookupError:  # unknown-8bit and other labels Python has no codec for
            return data.decode("utf-8", "replace")
    return _clean(str(payload or ""))


def _status_blocks(part: Message) -> list[Message]:
    """Per-message block first, then one per recipient (RFC 3464 §2.1)."""
    payload = part.get_payload()
    cte = (_field(part, "Content-Transfer-Encoding") or "").lower()
    if (isinstance(payload, list) and cte not in _ENCODED
            and part.get_content_type() == "message/delivery-status"):
        return payload
    parser = HeaderParser(policy=compat32)
    text = _part_text(part).replace("\r\n", "\n")
    return [parser.parsestr(block.strip("\n") + "\n")
            for block in re.split(r"\n[ \t]*\n", text) if block.strip()]


def _original_message_id(part: Message) -> str | None:
    payload = part.get_payload()
    if isinstance(payload, list):
        headers = payload[0] if payload and isinstance(payload[0], Message) else None
    else:
        headers = HeaderParser(policy=compat32).parsestr(_part_text(part).lstrip())
    return _message_id(_field(headers, "Message-ID")) if headers is not None else None


def parse_dsn(raw: bytes) -> list[BounceReport]:
    """One report per failed or delayed recipient; delivered/relayed/expanded are not bounces."""
    if isinstance(raw, str):
        raw = raw.encode("utf-8", "surrogateescape")
    msg = message_from_bytes(bytes(raw).lstrip(b"\r\n"), policy=compat32)
    parts = msg.get_payload() if msg.get_content_type() == "multipart/report" else None
    if not isinstance(parts, list):
        raise BounceParseError("not a delivery status notification")
    status_part = next((p for p in parts if p.get_content_type() in _DSN_TYPES), None)
    if status_part is None:
        raise BounceParseError("not a delivery status notification: no delivery-status part")
    original = next((p for p in parts if p.get_content_type() in _ORIGINAL_TYPES), None)
    original_id = _original_message_id(original) if original is not None else None

    recipients = [b for b in _status_blocks(status_part)
                  if any(b.get(f) is not None for f in ("Final-Recipient", "Original-Recipient", "Action"))]
    if not recipients:
        raise BounceParseError("not a delivery status notification: no recipient block")
    reports = []
    for n, block in enumerate(recipients, start=1):
        action, status = _field(block, "Action"), _field(block, "Status")
        diagnostic = _field(block, "Diagnostic-Code")
        kind = classify(action, _status(status, diagnostic))
        if kind is None:
            continue
        address = _address(_field(block, "Final-Recipient")) or _address(_field(block, "Original-Recipient"))
        if address is None:
            raise BounceParseError(f"recipient block {n} has no recipient address")
        reports.append(BounceReport(address=address, kind=kind, status=_status(status, diagnostic),
                                    diagnostic=_diagnostic(diagnostic), messageId=original_id, source="dsn"))
    return reports


# --- provider webhooks --------------------------------------------------------------

def _ses_message_id(mail: Any) -> str | None:
    """Our Message-ID, never SES's own mail.messageId (that one is not ours to match)."""
    if not isinstance(mail, dict):
        return None
    common = mail.get("commonHeaders")
    found = _message_id(common.get("messageId")) if isinstance(common, dict) else None
    if found:
        return found
    for header in mail.get("headers") or []:
        if isinstance(header, dict) and str(header.get("name", "")).strip().lower() == "message-id":
            return _message_id(header.get("value"))
    return None


_SES_BOUNCE = {"permanent": "hard", "transient": "soft", "undetermined": "soft"}


def _ses_recipients(body: Any, key: str, what: str) -> list[Any]:
    recipients = body.get(key) if isinstance(body, dict) else None
    if not isinstance(recipients, list):
        raise BounceParseError(f"SES {what} notification has no {key}")
    return recipients


def _parse_ses(note: dict[str, Any]) -> list[BounceReport]:
    kind_field = note.get("notificationType", note.get("eventType"))
    if not isinstance(kind_field, str):
        raise BounceParseError("SES notification has no notificationType/eventType")
    event = kind_field.strip().lower()
    message_id = _ses_message_id(note.get("mail"))
    if event == "bounce":
        body = note.get("bounce")
        kind = _SES_BOUNCE.get(str((body or {}).get("bounceType", "")).strip().lower()) \
            if isinstance(body, dict) else None
        if kind is None:
            raise BounceParseError("SES bounce has no known bounceType")
        entries = [(r, kind) for r in _ses_recipients(body, "bouncedRecipients", "bounce")]
    elif event == "deliverydelay":
        # SES event publishing only; the same thing as a DSN with Action: delayed
        body = note.get("deliveryDelay")
        entries = [(r, "soft") for r in _ses_recipients(body, "delayedRecipients", "delivery delay")]
    elif event == "complaint":
        body = note.get("complaint")
        entries = [(r, "complaint") for r in _ses_recipients(body, "complainedRecipients", "complaint")]
    else:
        return []  # Delivery, Send, Open, ...: not about a bad address

    reports = []
    for n, (entry, kind) in enumerate(entries, start=1):
        address = _address(entry.get("emailAddress")) if isinstance(entry, dict) else None
        if address is None:
            raise BounceParseError(f"bounce entry {n} has no recipient address")
        if kind == "complaint":
            status, diagnostic = None, _diagnostic(body.get("complaintFeedbackType"), typed=False)
        else:
            status = _status(entry.get("status"), entry.get("diagnosticCode"))
            diagnostic = _diagnostic(entry.get("diagnosticCode"))
        feedback = body.get("feedbackId") if isinstance(body, dict) else None
        reports.append(BounceReport(address=address, kind=kind, status=status, diagnostic=diagnostic,
                                    messageId=message_id, source="ses",
                                    eventId=f"ses:{feedback[:200]}/{n}" if isinstance(feedback, str) and feedback else None))
    return reports


def _sendgrid_kind(event: dict[str, Any]) -> Kind | None:
    name = str(event.get("event", "")).strip().lower()
    if name == "bounce":
        return "soft" if str(event.get("type", "")).strip().lower() == "blocked" else "hard"
    return {"blocked": "soft", "dropped": "hard", "deferred": "soft", "spamreport": "complaint"}.get(name)


def _parse_sendgrid(events: list[Any]) -> list[BounceReport]:
    reports = []
    for n, event in enumerate(events, start=1):
        if not isinstance(event, dict):
            raise BounceParseError(f"SendGrid event {n} is not an object")
        if not isinstance(event.get("event"), str):
            raise BounceParseError(f"SendGrid event {n} has no event type")
        kind = _sendgrid_kind(event)
        if kind is None:
            continue  # delivered, open, click, processed, ...
        address = _address(event.get("email"))
        if address is None:
            raise BounceParseError(f"bounce entry {n} has no recipient address")
        reason = event.get("reason") if isinstance(event.get("reason"), str) else event.get("response")
        status = None if kind == "complaint" else _status(event.get("status"), reason)
        event_id = event.get("sg_event_id")
        reports.append(BounceReport(address=address, kind=kind, status=status,
                                    diagnostic=_diagnostic(reason, typed=False),
                                    messageId=_message_id(event.get("smtp-id")), source="sendgrid",
                                    eventId=f"sendgrid:{event_id[:200]}" if isinstance(event_id, str) and event_id else None))
    return reports


def _unwrap_sns(note: dict[str, Any]) -> dict[str, Any]:
    kind = note.get("Type")
    if kind in ("SubscriptionConfirmation", "UnsubscribeConfirmation"):
        raise BounceParseError(f"SNS {kind} is not a bounce notification")
    if kind != "Notification":
        raise BounceParseError("SNS message is not of Type Notification")
    message = note.get("Message")
    if isinstance(message, str):
        try:
            message = json.loads(message)
        except ValueError:
            raise BounceParseError("SNS Message is not JSON") from None
    if not isinstance(message, dict):
        raise BounceParseError("SNS Message is not a JSON object")
    return message


def parse_provider(payload: Any) -> list[BounceReport]:
    """Decoded webhook JSON from SES (direct or via SNS) or SendGrid; other events give []."""
    if isinstance(payload, list):
        return _parse_sendgrid(payload)
    if not isinstance(payload, dict):
        raise BounceParseError("provider notification must be a JSON object or list")
    if "Type" in payload and "Message" in payload:
        payload = _unwrap_sns(payload)
    if "notificationType" in payload or "eventType" in payload:
        return _parse_ses(payload)
    if "event" in payload and "email" in payload:
        return _parse_sendgrid([payload])
    raise BounceParseError("unknown provider notification: no notificationType/eventType or SendGrid event list")


# --- our Message-IDs ----------------------------------------------------------------

def message_id(interaction_id: str, kind: str, domain: str) -> str:
    """The Message-ID we send with, so a bounce can be traced back to its interaction."""
    if not isinstance(interaction_id, str) or not _INTERACTION_ID.fullmatch(interaction_id):
        raise ValueError("interaction id must be letters, digits, '_', '-' or '~'")
    if kind not in _KINDS:
        raise ValueError("message kind must be 'invoice' or 'ack'")
    if not isinstance(domain, str) or not _DOMAIN.fullmatch(domain):
        raise ValueError("message id domain must be a bare domain name")
    return f"<{interaction_id}.{kind}@{domain}>"


def interaction_of(message_id: str | None, domain: str | None = None) -> str | None:
    """None for anything we did not send: other senders' ids, other domains."""
    if not isinstance(message_id, str):
        return None
    m = _OUR_MSGID.fullmatch(message_id.strip())
    if m is None:
        return None
    if domain is not None and m.group(3).lower() != domain.strip().lower():
        return None
    return m.group(1)
