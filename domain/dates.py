"""Invoice dates: UTC inside, the customer's registered timezone on the invoice.

The guide's trap: Genesys timestamps are UTC, and an invoice dated in UTC can carry the
wrong day (and so the wrong tax period and due date). A call that ends 2026-12-31 23:30
UTC for a customer in Asia/Tokyo is dated 2027-01-01.

Rule for a customer without a usable timezone: no timezone -> the configured default
(CALLBILL_DEFAULT_TIMEZONE) if there is one, else review; a timezone that is not a valid
IANA name -> review (the record is wrong and someone should fix it), never silent UTC.
"""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel

from domain.reasons import Refusal


class DateError(Refusal):
    pass


class InvoiceDates(BaseModel):
    timezone: str
    timezoneSource: str  # "customer" or "default"
    serviceAt: datetime  # UTC
    serviceAtLocal: datetime  # with the customer's offset
    serviceDate: date
    issueDate: date
    dueDate: date


def zone(name: str) -> ZoneInfo:
    try:
        if not name or name != name.strip() or name.startswith("/") or ".." in name:
            raise ValueError
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise DateError("INVALID_TIMEZONE", "the customer's timezone is not a valid IANA timezone name") from None


def customer_zone(registered: str | None, default: str | None) -> tuple[ZoneInfo, str]:
    if registered:
        return zone(registered), "customer"
    if default:
        return zone(default), "default"
    raise DateError("NO_TIMEZONE", "the customer record has no timezone and CALLBILL_DEFAULT_TIMEZONE is not set")


def invoice_dates(ended_at: datetime, registered: str | None, default: str | None, terms_days: int) -> InvoiceDates:
    """Service and issue date: the day the interaction ended, where the customer lives.

    The issue date is the service date (not the processing day), so reprocessing an
    interaction yields the same invoice. Due = issue date + payment terms, in days.
    """
    if ended_at.tzinfo is None:
        raise ValueError("ended_at must be timezone-aware")
    tz, source = customer_zone(registered, default)
    utc = ended_at.astimezone(timezone.utc)
    local = utc.astimezone(tz)
    day = local.date()
    return InvoiceDates(timezone=tz.key, timezoneSource=source, serviceAt=utc, serviceAtLocal=local,
                        serviceDate=day, issueDate=day, dueDate=day + timedelta(days=terms_days))
