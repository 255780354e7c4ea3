"""genesys.events -> callbill.interactions: one canonical record per ended interaction.

Three ways in, one way out: the guide's webhook (complete at once), EventBridge detail
events (joined in the `pending` table until complete), and Analytics conversations from
backfill or reconciliation. A conversation that stays incomplete is completed from the
Analytics API after CALLBILL_ASSEMBLY_WAIT, or sent to review naming what is missing.
"""
from __future__ import annotations

from datetime import datetime, timedelta

import faust

from agents.context import Context
from adapters.genesys import GenesysError
from agents.routing import guarded, parse
from runtime.logs import get_logger
from runtime.metrics import EXTERNAL_ERRORS
from domain.assembly import (
    Pending, analytics_facts, apply, deciding_code, interaction_from_pending, missing, wrapup_ids,
)
from domain.intake import interaction_from_webhook
from schemas.customers import Customer, customer_from_genesys_contact
from schemas.events import InteractionCompleted
from schemas.genesys import DetailEventBody, EventBridgeEvent, GenesysEvent, WebhookPayload

STAGE = "assemble"
log = get_logger(STAGE)


class NotYet(Exception):
    """Genesys could not answer now; the conversation stays pending and is tried again."""


async def handle(ctx: Context, event: faust.EventT) -> None:
    envelope: GenesysEvent = parse(GenesysEvent, event.value)
    now = ctx.clock()
    if envelope.kind == "webhook":
        payload = parse(WebhookPayload, envelope.payload)
        await emit(ctx, interaction_from_webhook(payload), now)
    elif envelope.kind == "eventbridge":
        ev: EventBridgeEvent = parse(EventBridgeEvent, envelope.payload)
        await on_detail_event(ctx, ev.conversation_id, ev.event_kind, DetailEventBody.model_validate(ev.detail.eventBody), now)
    elif envelope.kind == "backfill":
        await on_analytics(ctx, envelope.payload, now, source="backfill")
    else:
        await on_expire(ctx, str(envelope.payload.get("conversationId")), now)


async def on_detail_event(ctx: Context, cid: str, kind: str, body: DetailEventBody, now: datetime) -> None:
    p = ctx.pending.get(cid)
    if p is not None and p.done is not None:
        await ctx.audit(STAGE, cid, "LATE_EVENT", kind)
        return
    p, new = apply(p, cid, kind, body, now)
    if not new:
        await ctx.audit(STAGE, cid, "REPEATED_EVENT", kind)
        return
    ctx.pending.put(p)
    if missing(p):
        await ctx.audit(STAGE, cid, "EVENT_RECEIVED", kind)
        return
    try:
        await complete(ctx, p, "eventbridge", now)
    except NotYet as e:
        await ctx.audit(STAGE, cid, "WAITING_FOR_GENESYS", str(e))


async def on_analytics(ctx: Context, conv: dict, now: datetime, source: str) -> None:
    cid = str(conv.get("conversationId"))
    facts = analytics_facts(conv)
    if facts is None:
        await ctx.audit(STAGE, cid, "NOT_ENDED", source)
        return
    p = ctx.pending.get(cid)
    if (p is not None and p.done is not None) or ctx.ledger.get(cid) is not None:
        await ctx.audit(STAGE, cid, "ALREADY_ASSEMBLED", source)
        return
    if missing(facts):
        await ctx.audit(STAGE, cid, "NOT_WRAPPED_UP", source)
        return
    try:
        await complete(ctx, facts, source, now)
    except NotYet as e:
        # a backfill runs again; keep nothing half-done
        await ctx.audit(STAGE, cid, "WAITING_FOR_GENESYS", str(e))


async def on_expire(ctx: Context, cid: str, now: datetime) -> None:
    p = ctx.pending.get(cid)
    if p is None:
        return
    if p.done is not None:
        if now - p.done >= timedelta(seconds=ctx.settings.assembly_done_ttl):
            ctx.pending.drop(cid)
        return
    if now - p.firstSeen < timedelta(seconds=ctx.settings.assembly_wait):
        return
    api = ctx.services.genesys
    if api is not None:
        try:
            conv = await api.conversation_details(cid)
        except GenesysError as e:
            EXTERNAL_ERRORS.labels("genesys", f"http_{e.status}" if e.status else "unreachable").inc()
            await ctx.audit(STAGE, cid, "WAITING_FOR_GENESYS", f"analytics {e.status}")
            return
        facts = analytics_facts(conv) if conv else None
        if facts is not None and not missing(facts):
            facts.contactIds = list(dict.fromkeys(p.contactIds + facts.contactIds))
            try:
                await complete(ctx, facts, "backfill", now)
                return
            except NotYet as e:
                await ctx.audit(STAGE, cid, "WAITING_FOR_GENESYS", str(e))
                return
    reason = "missing " + ", ".join(missing(p))
    await ctx.review(STAGE, cid, "INCOMPLETE_CONVERSATION", detail=reason)
    await ctx.audit(STAGE, cid, "REVIEW", "INCOMPLETE_CONVERSATION")
    mark_done(ctx, p, now)


async def complete(ctx: Context, p: Pending, source: str, now: datetime) -> None:
    codes = []
    try:
        for code_id in wrapup_ids(p):
            codes.append((code_id, await ctx.services.wrapup_codes.name(code_id)))
    except GenesysError as e:
        EXTERNAL_ERRORS.labels("genesys", f"http_{e.status}" if e.status else "unreachable").inc()
        raise NotYet(f"wrap-up code lookup {e.status}") from None
    code = deciding_code(codes, ctx.settings.billable_code_set)
    assert code is not None  # complete(ctx) is only called when there is one
    unknown = [cid for cid, name in codes if name is None]
    if code[1] is None and unknown:
        await ctx.review(STAGE, p.conversationId, "UNKNOWN_WRAPUP_CODE",
                     detail="wrap-up code id(s) not known to Genesys: " + ", ".join(unknown))
        await ctx.audit(STAGE, p.conversationId, "REVIEW", "UNKNOWN_WRAPUP_CODE")
        mark_done(ctx, p, now)
        return
    customer_id = await resolve_customer(ctx, p.contactIds)
    interaction = interaction_from_pending(p, code, customer_id).model_copy(update={"source": source})
    await emit(ctx, interaction, now, p)


async def resolve_customer(ctx: Context, contact_ids: list[str]) -> str | None:
    """The directory first; else the Genesys external contact, added to the ctx.directory."""
    await ctx.directory.ready()
    found = ctx.directory.customer_for_contacts(contact_ids)
    api = ctx.services.genesys
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
            await publish_customer(ctx, customer)
            return customer.customerId
    return None


async def publish_customer(ctx: Context, customer: Customer) -> None:
    """Add a customer to the directory topic (and to this worker's view at once)."""
    value = customer.model_dump_json().encode()
    await ctx.send_raw("crm.customers", customer.customerId.encode(), value)
    ctx.directory.apply(customer.customerId, value)


async def emit(ctx: Context, interaction: InteractionCompleted, now: datetime, p: Pending | None = None) -> None:
    await ctx.publish("callbill.interactions", interaction.interactionId, interaction, wait=False)
    mark_done(ctx, p or Pending(conversationId=interaction.interactionId, firstSeen=now, updatedAt=now), now)
    await ctx.audit(STAGE, interaction.interactionId, "ASSEMBLED", interaction.source)


def mark_done(ctx: Context, p: Pending, now: datetime) -> None:
    ctx.pending.put(Pending(conversationId=p.conversationId, firstSeen=p.firstSeen, updatedAt=now, done=now))


async def sweep_pending(ctx: Context) -> None:
    """Remind the assembler of conversations that waited too long (tables are written
    only from the agent, in the message's partition, so the timer sends a message)."""
    now = ctx.clock()
    wait = timedelta(seconds=ctx.settings.assembly_wait)
    done_ttl = timedelta(seconds=ctx.settings.assembly_done_ttl)
    sent = 0
    for cid, p in ctx.pending.items():
        if (p.done is None and now - p.firstSeen >= wait) or (p.done is not None and now - p.done >= done_ttl):
            record = GenesysEvent(kind="expire", receivedAt=now, payload={"conversationId": cid})
            await ctx.send_raw("genesys.events", cid.encode(), record.model_dump_json().encode())
            sent += 1
    if sent:
        log.info("expiry reminders sent", extra={"stage": STAGE, "count": sent})


async def reconcile(ctx: Context) -> None:
    """Backfill the last hours so an event lost upstream is still invoiced (leader only)."""
    from agents.reconcile import backfill

    api = ctx.services.genesys
    if api is None or ctx.settings.reconcile_hours <= 0:
        return
    until = ctx.clock()
    since = until - timedelta(hours=ctx.settings.reconcile_hours)

    async def send(key: str, value: bytes) -> None:
        await ctx.send_raw("genesys.events", key.encode(), value)
    try:
        summary = await backfill(api, ctx.services.wrapup_codes, since, until, send, ctx.settings.billable_code_set)
    except GenesysError as e:
        EXTERNAL_ERRORS.labels("genesys", f"http_{e.status}" if e.status else "unreachable").inc()
        log.warning("reconciliation failed", extra={"stage": "reconcile", "reason": f"{e.endpoint} {e.status}"})
        return
    log.info("reconciliation done", extra={"stage": "reconcile", "reason": summary.line()})


def register(app: faust.App, ctx: Context) -> None:
    @app.agent(ctx.topics["genesys.events"], name="assemble")
    async def assemble(stream: faust.StreamT) -> None:
        await guarded(ctx, STAGE, stream, lambda e: handle(ctx, e))

    @app.timer(ctx.settings.assembly_sweep_interval)
    async def sweep_pending_timer() -> None:
        await sweep_pending(ctx)

    @app.timer(ctx.settings.reconcile_interval, on_leader=True)
    async def reconcile_timer() -> None:
        await reconcile(ctx)
