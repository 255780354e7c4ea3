"""Joining Genesys detail events into one interaction (pure: no Kafka, no HTTP).

Real Genesys Cloud sends what billing needs in parts: `customer.end` (when the customer
left and how long they were connected), `user.end` per agent leg, and `acw`/`wrapup`
per agent with the wrap-up code *id*. Events arrive in any order and may repeat.

Rules (also in the README):
- complete = a `customer.end`, at least one wrap-up code, and a wrap-up code for every
  agent leg seen (a transfer has one leg per agent);
- billable duration = the customer's `interactingDurationMs` from `customer.end` (what the
  customer was connected for, holds included, consults not counted twice); without it,
  the sum of the agent legs' interacting + held time;
- the deciding wrap-up code = the first billable one in leg order, else the last one; so
  a transfer is billable when any agent on it wrapped it up as billable;
- end time = `customer.end`'s eventTime, to the whole second (half up); start = end -
  duration (no event carries a start). The webhook's start + duration gives the same.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from pydantic import AwareDatetime, BaseModel, Field

from schemas.events import InteractionCompleted
from schemas.genesys import DetailEventBody

MAX_FINGERPRINTS = 64


class Leg(BaseModel):
    userId: str | None = None
    queueId: str | None = None
    interactingMs: int | None = None
    heldMs: int | None = None
    endedAt: AwareDatetime | None = None
    wrapupCodeId: str | None = None
    wrapupAt: AwareDatetime | None = None


class Pending(BaseModel):
    """What is known so far about one conversation (the `pending` table's value)."""

    conversationId: str
    firstSeen: AwareDatetime
    updatedAt: AwareDatetime
    done: AwareDatetime | None = None  # emitted or handed to review: later events are late
    customerEndAt: AwareDatetime | None = None
    customerInteractingMs: int | None = None
    mediaType: str | None = None
    contactIds: list[str] = Field(default_factory=list)
    legs: dict[str, Leg] = Field(default_factory=dict)
    seen: list[str] = Field(default_factory=list)


def _ms(ms: int | None) -> datetime | None:
    return datetime.fromtimestamp(ms / 1000, timezone.utc) if ms is not None else None


def _add_contacts(p: Pending, body: DetailEventBody) -> None:
    for cid in [body.externalContactId, *(body.conversationExternalContactIds or [])]:
        if cid and cid not in p.contactIds:
            p.contactIds.append(cid)


def apply(p: Pending | None, conversation_id: str, kind: str, body: DetailEventBody, now: datetime) -> tuple[Pending, bool]:
    """Merge one detail event; returns the new state and whether the event was new."""
    p = p.model_copy(deep=True) if p else Pending(conversationId=conversation_id, firstSeen=now, updatedAt=now)
    fingerprint = f"{kind}|{body.userId}|{body.queueId}|{body.eventTime}|{body.wrapupCode}"
    if fingerprint in p.seen:
        return p, False
    p.seen = (p.seen + [fingerprint])[-MAX_FINGERPRINTS:]
    p.updatedAt = now
    _add_contacts(p, body)
    if body.mediaType and not p.mediaType:
        p.mediaType = body.mediaType.upper()
    if kind == "customer.end":
        p.customerEndAt = _ms(body.eventTime) or p.customerEndAt
        if body.interactingDurationMs is not None:
            p.customerInteractingMs = body.interactingDurationMs
    elif kind == "user.end":
        leg = _leg_for(p, body)
        leg.interactingMs = body.interactingDurationMs if body.interactingDurationMs is not None else leg.interactingMs
        leg.heldMs = body.heldDurationMs if body.heldDurationMs is not None else leg.heldMs
        leg.endedAt = _ms(body.eventTime) or leg.endedAt
        leg.queueId = leg.queueId or body.queueId
    elif kind in ("acw", "wrapup") and body.wrapupCode:
        leg = _leg_for(p, body, want_unwrapped=True)
        leg.wrapupCodeId = body.wrapupCode
        leg.wrapupAt = _ms(body.eventTime) or now
        leg.queueId = leg.queueId or body.queueId
    return p, True


def _leg_for(p: Pending, body: DetailEventBody, want_unwrapped: bool = False) -> Leg:
    """The agent leg an event belongs to: by userId; a `wrapup` without one by queue."""
    if body.userId:
        return p.legs.setdefault(body.userId, Leg(userId=body.userId))
    if want_unwrapped:
        for leg in p.legs.values():
            if leg.wrapupCodeId is None and (leg.queueId == body.queueId or body.queueId is None):
                return leg
    key = f"queue:{body.queueId}:{len(p.legs)}"
    return p.legs.setdefault(key, Leg(queueId=body.queueId))


def missing(p: Pending) -> list[str]:
    """What still stops this conversation from being billed (names, for the review)."""
    out = []
    if p.customerEndAt is None:
        out.append("customer.end event")
    codes = [leg.wrapupCodeId for leg in p.legs.values()]
    if not any(codes):
        out.append("wrap-up code")
    elif not all(codes):
        out.append("wrap-up code of every agent leg")
    return out


def wrapup_ids(p: Pending) -> list[str]:
    legs = sorted(p.legs.values(), key=lambda leg: (leg.wrapupAt or leg.endedAt or p.firstSeen))
    return [leg.wrapupCodeId for leg in legs if leg.wrapupCodeId]


def deciding_code(codes: list[tuple[str, str | None]], billable: frozenset[str]) -> tuple[str, str | None] | None:
    """(id, name) of the code that decides billing: the first billable one, else the last."""
    for cid, name in codes:
        if cid.strip().casefold() in billable or (name and name.strip().casefold() in billable):
            return cid, name
    return codes[-1] if codes else None


def seconds(ms: int) -> int:
    return int((Decimal(ms) / 1000).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def duration_ms(p: Pending) -> int:
    if p.customerInteractingMs is not None:
        return p.customerInteractingMs
    return sum((leg.interactingMs or 0) + (leg.heldMs or 0) for leg in p.legs.values())


def whole_second(dt: datetime) -> datetime:
    """Canonical times are whole seconds (half up), like the webhook's; all paths agree."""
    return dt.replace(microsecond=0) + timedelta(seconds=1 if dt.microsecond >= 500_000 else 0)


def interaction_from_pending(p: Pending, code: tuple[str, str | None], customer_id: str | None) -> InteractionCompleted:
    assert p.customerEndAt is not None
    secs = seconds(duration_ms(p))
    end = whole_second(p.customerEndAt)
    return InteractionCompleted(
        interactionId=p.conversationId, source="eventbridge", customerId=customer_id,
        externalContactId=p.contactIds[0] if p.contactIds else None,
        startedAt=end - timedelta(seconds=secs), endedAt=end, durationSeconds=secs,
        wrapupCodeId=code[0], wrapupCode=code[1], mediaType=p.mediaType,
    )


# --- Analytics API conversations (backfill, reconciliation, completing a stale one) ----------

def _iso(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


def analytics_facts(conv: dict[str, Any]) -> Pending | None:
    """An Analytics conversation as the same facts the detail events would have given.

    None when it has not ended. The customer's segments give the end and the connected
    time; agents' `wrapup` segments give the codes, in order.
    """
    end = _iso(conv.get("conversationEnd"))
    if end is None:
        return None
    cid = conv["conversationId"]
    p = Pending(conversationId=cid, firstSeen=end, updatedAt=end)
    customer_end: datetime | None = None
    connected_ms = 0
    for part in conv.get("participants") or []:
        purpose = (part.get("purpose") or "").lower()
        if purpose in ("customer", "external"):
            if part.get("externalContactId") and part["externalContactId"] not in p.contactIds:
                p.contactIds.append(part["externalContactId"])
            for session in part.get("sessions") or []:
                if session.get("mediaType") and not p.mediaType:
                    p.mediaType = session["mediaType"].upper()
                for seg in session.get("segments") or []:
                    s, e = _iso(seg.get("segmentStart")), _iso(seg.get("segmentEnd"))
                    if s and e and seg.get("segmentType") in ("interact", "hold"):
                        connected_ms += int((e - s).total_seconds() * 1000)
                    if e and (customer_end is None or e > customer_end):
                        customer_end = e
        elif purpose in ("agent", "user"):
            for session in part.get("sessions") or []:
                for seg in session.get("segments") or []:
                    if seg.get("segmentType") == "wrapup" and seg.get("wrapUpCode"):
                        key = f"{part.get('userId')}:{seg.get('segmentStart')}"
                        p.legs[key] = Leg(userId=part.get("userId"), queueId=seg.get("queueId"),
                                          wrapupCodeId=seg["wrapUpCode"], wrapupAt=_iso(seg.get("segmentStart")))
    p.customerEndAt = customer_end or end
    p.customerInteractingMs = connected_ms or None
    return p
