"""callbill.bounces -> the suppression list, the ledger and the review queue.

Bounces arrive from three places: a recipient refused at send time (agents/delivery.py),
bounce messages (DSN, RFC 3464) read from CALLBILL_BOUNCE_MAILDIR, and provider
notifications (SES/SendGrid JSON) posted to /bounces/provider. Keyed by interactionId
when the Message-ID names one (co-partitioned with the ledger), else by address.

A hard bounce or a complaint suppresses the address (no loop of emails to a dead
address, edge case 3), marks the delivery failed and opens a review item. A soft bounce
allows one more attempt (the invoice goes back to delivery after a delay), and from
CALLBILL_SOFT_BOUNCE_LIMIT soft bounces on one interaction on, it counts as hard.
"""
from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import faust

from agents.context import Context
from agents.routing import guarded, parse, source_of
from runtime.logs import get_logger
from runtime.metrics import STAGE_OUTCOMES
from domain.backoff import next_delay
from domain.bounces import BounceParseError, BounceReport, interaction_of, parse_dsn
from domain.delivery import suppression_key
from domain.ledger import State
from schemas.deliveries import Bounce, Suppression
from schemas.events import RetryItem

STAGE = "bounces"
log = get_logger("bounces")


def bounce_of(ctx: Context, report: BounceReport) -> Bounce:
    iid = interaction_of(report.messageId, ctx.services.transports.mail_domain())
    return Bounce(address=suppression_key(report.address), kind=report.kind, status=report.status,
                  diagnostic=report.diagnostic, interactionId=iid, messageId=report.messageId,
                  source=report.source, eventId=report.eventId)  # type: ignore[arg-type]


async def publish_bounce(ctx: Context, b: Bounce) -> None:
    await ctx.publish("callbill.bounces", b.interactionId or b.address, b)


async def suppress(ctx: Context, s: Suppression) -> None:
    """Add to the list (and to this worker's view at once, so the next send sees it)."""
    value = s.model_dump_json().encode()
    await ctx.send_raw("callbill.suppressions", s.address.encode(), value)
    ctx.suppressions.apply(s.address, value)


async def handle(ctx: Context, event: faust.EventT) -> None:
    b: Bounce = parse(Bounce, event.value)
    iid = b.interactionId
    entry = ctx.ledger.get(iid) if iid else None
    source = source_of(event)
    again = False  # this very message read again after a crash: its outputs may be lost, its count is not
    seen: dict[str, object] = {}
    if entry is not None and b.eventId is not None:
        if b.eventId in entry.bounceEvents:
            if entry.bounceSource != source:
                # the provider sent it again, or someone replayed it: counted once
                await ctx.audit(STAGE, iid, "REPEATED_BOUNCE", b.source)
                return
            again = True
        else:
            seen = {"bounceEvents": [*entry.bounceEvents, b.eventId][-20:], "bounceSource": source}
    soft_count = entry.softBounces + (0 if again else 1) if entry is not None else 0
    if b.kind == "soft" and entry is not None and soft_count < ctx.settings.soft_bounce_limit:
        n = soft_count
        if not again:
            ctx.ledger.update(iid, softBounces=n, deliveryAttempt=entry.deliveryAttempt + 1, state=State.DOCUMENTED,
                              **seen)
        if entry.document:
            delay = ctx.settings.retry_base_delay + next_delay(n, ctx.settings.retry_base_delay, ctx.settings.retry_max_delay)
            await ctx.publish("callbill.retry", iid, RetryItem(
                interactionId=iid, stage=STAGE, topic="callbill.documents", attempt=n,
                notBefore=ctx.clock() + timedelta(seconds=delay), reason=f"soft bounce {b.status or ''}".strip(),
                payload=entry.document.model_dump(mode="json")), wait=False)
        await ctx.audit(STAGE, iid, "SOFT_BOUNCE", b.status, count=n)
        return
    reason = "complaint" if b.kind == "complaint" else ("hard" if b.kind == "hard" else "soft-limit")
    await suppress(ctx, Suppression(address=b.address, reason=reason, status=b.status, source=b.source,  # type: ignore[arg-type]
                               interactionId=iid))
    STAGE_OUTCOMES.labels(STAGE, "SUPPRESSED").inc()
    if entry is None:
        log.info("address suppressed", extra={"stage": STAGE, "reason": reason})
        return
    failed = {**(entry.delivery.model_dump(mode="json") if entry.delivery else {}), "status": "FAILED",
              "reason": f"{reason} bounce"}
    ctx.ledger.update(iid, state=State.REVIEW, reason="PENDING_REVIEW:BOUNCED", delivery=failed,
                      softBounces=entry.softBounces + (b.kind == "soft" and not again), **seen)
    await ctx.review(STAGE, iid, "PENDING_REVIEW:BOUNCED",
                 detail=f"email {reason} bounce{' ' + b.status if b.status else ''}: the address is suppressed; "
                        "update the customer's contact details and resubmit")
    await ctx.audit(STAGE, iid, "BOUNCED", reason)


async def scan_maildir(ctx: Context, maildir: Path) -> tuple[int, int]:
    """Publish the bounces of every message file in `maildir`; move each to processed/
    (or unreadable/ when it is not a DSN). Returns (files, bounces)."""
    files = bounces_found = 0
    for path in sorted(p for p in maildir.iterdir() if p.is_file() and not p.name.startswith(".")):
        claimed = path.with_name(f".{path.name}.{os.getpid()}")
        try:
            os.rename(path, claimed)  # another worker may be scanning the same directory
        except OSError:
            continue
        try:
            reports = parse_dsn(claimed.read_bytes())
            target = "processed"
        except BounceParseError:
            reports, target = [], "unreadable"
        for r in reports:
            await publish_bounce(ctx, bounce_of(ctx, r))
        (maildir / target).mkdir(exist_ok=True)
        os.replace(claimed, maildir / target / path.name)
        files += 1
        bounces_found += len(reports)
    return files, bounces_found


async def bounce_mailbox(ctx: Context) -> None:
    if ctx.settings.bounce_maildir is None or not ctx.settings.bounce_maildir.is_dir():
        return
    try:
        files, found = await scan_maildir(ctx, ctx.settings.bounce_maildir)
    except Exception as e:  # noqa: BLE001 - the next scan tries again
        log.warning("bounce mailbox scan failed", extra={"stage": STAGE, "reason": type(e).__name__})
        return
    if files:
        log.info("bounce mailbox read", extra={"stage": STAGE, "count": found})


def register(app: faust.App, ctx: Context) -> None:
    @app.agent(ctx.topics["callbill.bounces"], name="bounces")
    async def bounces(stream: faust.StreamT) -> None:
        await guarded(ctx, STAGE, stream, lambda e: handle(ctx, e))

    @app.timer(ctx.settings.bounce_poll_interval)
    async def bounce_mailbox_scan() -> None:
        await bounce_mailbox(ctx)
