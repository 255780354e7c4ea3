"""genesys.events -> callbill.interactions: one canonical record per ended interaction.

The guide's webhook carries everything at once and maps straight across. EventBridge
detail events (customer.end, acw, wrapup) each carry a part; until they are joined
(see the README, "Genesys events") they are audited as received and stay replayable on
genesys.events.
"""
from __future__ import annotations

import faust

from agents.routing import audit, guarded, parse, publish
from app.main import app, topics
from domain.intake import interaction_from_webhook
from schemas.genesys import EventBridgeEvent, GenesysEvent, WebhookPayload

STAGE = "assemble"


async def handle(event: faust.EventT) -> None:
    envelope = parse(GenesysEvent, event.value)
    if envelope.kind == "webhook":
        payload = parse(WebhookPayload, envelope.payload)
        interaction = interaction_from_webhook(payload)
        await publish("callbill.interactions", interaction.interactionId, interaction, wait=False)
        await audit(STAGE, interaction.interactionId, "ASSEMBLED", "webhook")
    else:
        ev = parse(EventBridgeEvent, envelope.payload)
        await audit(STAGE, ev.conversation_id, "EVENT_RECEIVED", ev.event_kind)


@app.agent(topics["genesys.events"], name="assemble")
async def assemble(stream: faust.StreamT) -> None:
    await guarded(STAGE, stream, handle)
