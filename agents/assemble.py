"""genesys.events -> callbill.interactions: one canonical record per ended interaction.

Three ways in, one way out: the guide's webhook (complete at once), EventBridge detail
events (joined in the `pending` table until complete), and Analytics conversations from
backfill or reconciliation. A conversation that stays incomplete is completed from the
Analytics API after CALLBILL_ASSEMBLY_WAIT, or sent to review naming what is missing.
"""
from __future__ import annotations

from datetime import datetime, timedelta

import faust

from adapters.genesys import GenesysError
from agents.routing import audit, guarded, parse, publish, review
from app import genesys
from runtime.logs import get_logger
from app.main import app, settings, topics
from runtime.metrics import EXTERNAL_ERRORS
from domain.assembly import (
    Pending, analytics_facts, apply, deciding_code, interaction_from_pending, missing, wrapup_ids,
)
from domain.intake import interaction_from_webhook
from schemas.customers import customer_from_genesys_contact
from schemas.events import InteractionCompleted, utcnow
from schemas.genesys import DetailEventBody, EventBridgeEvent, GenesysEvent, WebhookPayload
from tables.directory import directory, publish_customer
from tables.ledger import get_entry
from tables.pending import drop_pending, get_pending, put_pending

STAGE = "assemble"
log = get_logger(STAGE)


class NotYet(Exception):
    """Genesys could not answer now; the conversation stays pending and is tried again."""


async def handle(event: faust.EventT) -> None:
    envelope: GenesysEvent = parse(GenesysEvent, event.value)
    now = utcnow()
    if envelope.kind == "webhook":
        payload = parse(WebhookPayload, envelope.payload)
        await emit(interaction_from_webhook(payload), now)
    elif envelope.kind == "eventbridge":
        ev: EventBridgeEvent = parse(EventBridgeEvent, envelope.payload)
        await on_detail_event(ev.conversation_id, ev.event_kind, DetailEventBody.model_validate(ev.detail.eventBody), now)
    elif envelope.kind == "backfill":
        await on_analytics(envelope.payload, now, source="backfill")
    else:
        await on_expire(str(envelope.payload.get("conversationId")), now)


async def on_detail_event(cid: str, kind: str, body: DetailEventBody, now: datetime) -> None:
    p = get_pending(cid)
    if p is not None and p.done is not None:
        await audit(STAGE, cid, "LATE_EVENT", kind)
        return
    p, new = apply(p, cid, kind, body, now)
    if not new:
        await audit(STAGE, cid, "REPEATED_EVENT", kind)
        return
    put_pending(p)
    if missing(p):
        await audit(STAGE, cid, "EVENT_RECEIVED", kind)
        return
    try:
        await complete(p, "eventbridge", now)
    except NotYet as e:
        await audit(STAGE, cid, "WAITING_FOR_GENESYS", str(e))


async def on_analytics(conv: dict, now: datetime, source: str) -> None:
    cid = str(conv.get("conversationId"))
    facts = analytics_facts(conv)
    if facts is None:
        await audit(STAGE, cid, "NOT_ENDED", source)
        return
    p = get_pending(cid)
    if (p is not None and p.done is not None) or get_entry(cid) is not None:
        await audit(STAGE, cid, "ALREADY_ASSEMBLED", source)
        return
    if missing(facts):
        await audit(STAGE, cid, "NOT_WRAPPED_UP", source)
        return
    try:
        await complete(facts, source, now)
    except NotYet as e:
        # a backfill runs again; keep nothing half-done
        await audit(STAGE, cid, "WAITING_FOR_GENESYS", str(e))


async def on_expire(cid: str, now: datetime) -> None:
    p = get_pending(cid)
    if p is None:
        return
    if p.done is not None:
        if now - p.done >= timedelta(seconds=settings.assembly_done_ttl):
            drop_pending(cid)
        return
    if now - p.firstSeen < timedelta(seconds=settings.assembly_wait):
        return
    api = genesys.client()
    if api is not None:
        try:
            conv = await api.conversation_details(cid)
        except GenesysError as e:
            EXTERNAL_ERRORS.labels("genesys", f"http_{e.status}" if e.status else "unreachable").inc()
            await audit(STAGE, cid, "WAITING_FOR_GENESYS", f"analytics {e.status}")
            return
        facts = analytics_facts(conv) if conv else None
        if facts is not None and not missing(facts):
            facts.contactIds = list(dict.fromkeys(p.contactIds + facts.contactIds))
            try:
                await complete(facts, "backfill", now)
                return
            except NotYet as e:
                await audit(STAGE, cid, "WAITING_FOR_GENESYS", str(e))
                return
    reason = "missing " + ", ".join(missing(p))
    await review(STAGE, cid, "INCOMPLETE_CONVERSATION", detail=reason)
    await audit(STAGE, cid, "REVIEW", "INCOMPLETE_CONVERSATION")
    mark_done(p, now)


async def complete(p: Pending, source: str, now: datetime) -> None:
    codes = []
    try:
        for code_id in wrapup_ids(p):
            codes.append((code_id, await genesys.wrapup_codes().name(code_id)))
    except GenesysError as e:
        EXTERNAL_ERRORS.labels("genesys", f"http_{e.status}" if e.status else "unreachable").inc()
        raise NotYet(f"wrap-up code lookup {e.status}") from None
    code = deciding_code(codes, settings.billable_code_set)
    assert code is not None  # complete() is only called when there is one
    unknown = [cid for cid, name in codes if name is None]
    if code[1] is None and unknown:
        await review(STAGE, p.conversationId, "UNKNOWN_WRAPUP_CODE",
                     detail="wrap-up code id(s) not known to Genesys: " + ", ".join(unknown))
        await audit(STAGE, p.conversationId, "REVIEW", "UNKNOWN_WRAPUP_CODE")
        mark_done(p, now)
        return
    customer_id = await resolve_customer(p.contactIds)
    interaction = interaction_from_pending(p, code, customer_id).model_copy(update={"source": source})
    await emit(interaction, now, p)


async def resolve_customer(contact_ids: list[str]) -> str | None:
    """The directory first; else the Genesys external contact, added to the directory."""
    await directory.ready()
    found = directory.customer_for_contacts(contact_ids)
    api = genesys.client()
    if found or api is None:
        return found
    for contact_id in contact_ids:
        try:
            contact = await api.external_contact(contact_id)
        except GenesysError as e:
            EXTERNAL_ERRORS.labels("genesys", f"http_{e.status}" if e.status else "unreachable").inc()
            raise NotYet(f"external contact lookup {e.status}") from None
        if contact:
            customer = customer_from_genesys_contact(contact)
            await publish_customer(customer)
            return customer.customerId
    return None


async def emit(interaction: InteractionCompleted, now: datetime, p: Pending | None = None) -> None:
    await publish("callbill.interactions", interaction.interactionId, interaction, wait=False)
    mark_done(p or Pending(conversationId=interaction.interactionId, firstSeen=now, updatedAt=now), now)
    await audit(STAGE, interaction.interactionId, "ASSEMBLED", interaction.source)


def mark_done(p: Pending, now: datetime) -> None:
    put_pending(Pending(conversationId=p.conversationId, firstSeen=p.firstSeen, updatedAt=now, done=now))


@app.agent(topics["genesys.events"], name="assemble")
async def assemble(stream: faust.StreamT) -> None:
    await guarded(STAGE, stream, handle)


@app.timer(settings.assembly_sweep_interval)
async def sweep_pending() -> None:
    """Remind the assembler of conversations that waited too long (tables are written
    only from the agent, in the message's partition, so the timer sends a message)."""
    from tables.pending import pending

    now = utcnow()
    wait = timedelta(seconds=settings.assembly_wait)
    done_ttl = timedelta(seconds=settings.assembly_done_ttl)
    sent = 0
    for cid, raw in list(pending.items()):
        p = Pending.model_validate(raw)
        if (p.done is None and now - p.firstSeen >= wait) or (p.done is not None and now - p.done >= done_ttl):
            record = GenesysEvent(kind="expire", receivedAt=now, payload={"conversationId": cid})
            await topics["genesys.events"].send(key=cid.encode(), value=record.model_dump_json().encode())
            sent += 1
    if sent:
        log.info("expiry reminders sent", extra={"stage": STAGE, "count": sent})


@app.timer(settings.reconcile_interval, on_leader=True)
async def reconcile() -> None:
    """Backfill the last hours so an event lost upstream is still invoiced (leader only)."""
    from agents.reconcile import backfill

    api = genesys.client()
    if api is None or settings.reconcile_hours <= 0:
        return
    until = utcnow()
    since = until - timedelta(hours=settings.reconcile_hours)

    async def send(key: str, value: bytes) -> None:
        await topics["genesys.events"].send(key=key.encode(), value=value)
    try:
        summary = await backfill(api, genesys.wrapup_codes(), since, until, send, settings.billable_code_set)
    except GenesysError as e:
        EXTERNAL_ERRORS.labels("genesys", f"http_{e.status}" if e.status else "unreachable").inc()
        log.warning("reconciliation failed", extra={"stage": "reconcile", "reason": f"{e.endpoint} {e.status}"})
        return
    log.info("reconciliation done", extra={"stage": "reconcile", "reason": summary.line()})
