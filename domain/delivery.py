"""Which channel an invoice goes by, and whether the address may be used.

The guide's trap: `transactionalEmail: false` is "No Email", and the flow must fall back
to SMS, then postal mail, instead of failing silently; `marketingEmail` never stops an
invoice (invoices are transactional). A customer with no email address falls back the
same way. An address that is invalid or suppressed (hard bounce, complaint) is not
tried and not replaced by another channel: it goes to review (edge case 3), so the
billing team fixes the record instead of callbill looping on a dead address.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import phonenumbers
from email_validator import EmailNotValidError, validate_email

from schemas.customers import Customer


@dataclass(frozen=True)
class EmailRoute:
    address: str  # normalized


@dataclass(frozen=True)
class SmsRoute:
    number: str  # E.164


@dataclass(frozen=True)
class PostalRoute:
    name: str | None
    lines: tuple[str, ...]
    country: str


@dataclass(frozen=True)
class NoRoute:
    reason: str  # the review reason
    detail: str  # what the reviewer needs, no personal data


Route = EmailRoute | SmsRoute | PostalRoute | NoRoute


class AddressError(ValueError):
    """The text says what is wrong, never the address."""


def normalize_email(address: str) -> str:
    try:
        return _normalized(address.strip())
    except EmailNotValidError as e:
        raise AddressError(_no_address(str(e), address)) from None


@lru_cache(maxsize=4096)
def _normalized(address: str) -> str:
    """The syntax check of an address, kept for the addresses seen last: a customer who calls
    again is checked once (email_validator's parse was 2 % of the worker per delivery)."""
    return validate_email(address, check_deliverability=False).normalized


def suppression_key(address: str) -> str:
    """The suppression list's key: the normalized address, lower-cased whole."""
    try:
        return normalize_email(address).lower()
    except AddressError:
        return address.strip().lower()


def e164(phone: str, region: str | None) -> str:
    try:
        n = phonenumbers.parse(phone, (region or "US").upper())
    except phonenumbers.NumberParseException:
        raise AddressError("the phone number cannot be parsed") from None
    if not phonenumbers.is_valid_number(n):
        raise AddressError("the phone number is not a valid number")
    return phonenumbers.format_number(n, phonenumbers.PhoneNumberFormat.E164)


def _no_address(message: str, address: str) -> str:
    return message.replace(address.strip(), "<address>").replace(address, "<address>")[:200]


def postal_lines(c: Customer) -> tuple[str, ...] | None:
    a = c.postalAddress
    if not a or not a.line1 or not a.country or not (a.city or a.postalCode):
        return None
    city = " ".join(x for x in (a.postalCode, a.city) if x)
    return tuple(x for x in (a.line1, a.line2, ", ".join(y for y in (city, a.region) if y), a.country.upper()) if x)


def route(c: Customer, *, suppressed: Callable[[str], str | None], sms_enabled: bool,
          email_problem: Callable[[str], str | None] = lambda _a: None,
          default_region: str | None = None) -> Route:
    """`suppressed(key)` gives the suppression's reason or None; `email_problem(normalized)`
    is the optional deliverability check (DNS), None when fine."""
    p = c.preferences
    skipped: list[str] = []
    if p.transactionalEmail and c.email:
        try:
            address = normalize_email(c.email)
        except AddressError as e:
            return NoRoute("PENDING_REVIEW:EMAIL_INVALID", f"email address: {e}")
        why = suppressed(address.lower())
        if why:
            return NoRoute("PENDING_REVIEW:EMAIL_SUPPRESSED", f"email address suppressed ({why})")
        problem = email_problem(address)
        if problem:
            return NoRoute("PENDING_REVIEW:EMAIL_UNDELIVERABLE", f"email address: {problem}")
        return EmailRoute(address)
    skipped.append("email: opted out (No Email)" if c.email else "email: none on record")
    region = (c.postalAddress.country if c.postalAddress and c.postalAddress.country else None) or default_region
    if not p.sms:
        skipped.append("sms: not allowed")
    elif not c.phone:
        skipped.append("sms: no phone on record")
    elif not sms_enabled:
        skipped.append("sms: no SMS transport configured")
    else:
        try:
            return SmsRoute(e164(c.phone, region))
        except AddressError as e:
            skipped.append(f"sms: {e}")
    lines = postal_lines(c)
    if not p.postal:
        skipped.append("postal: not allowed")
    elif lines is None:
        skipped.append("postal: no complete address on record")
    else:
        return PostalRoute(c.name, lines, c.postalAddress.country.upper())  # type: ignore[union-attr]
    return NoRoute("NO_DELIVERY_CHANNEL", "; ".join(skipped))
