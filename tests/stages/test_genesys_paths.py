"""Genesys Cloud as it is, in process: detail events, wrap-up code ids, contacts, backfill,
reconciliation, through the assembler and intake of agents/ (tests/support/pipeline.py).

The Genesys API is the local fake server (the one place a fake is right: the real
service cannot run here); the clock is the test's, so waiting out CALLBILL_ASSEMBLY_WAIT
takes no time. The bridge's own part (signed posts, acks=all) is tested in tests/e2e.
"""
from __future__ import annotations

import asyncio
import json
import random
import subprocess
import sys
import uuid
from datetime import datetime, timedelta, timezone

import pytest

from agents.reconcile import backfill
from app.web.bridge import record_of
from fake_genesys import FakeGenesys, Leg, Scenario
from pipeline import Pipeline
from schemas.genesys import EventBridgeEvent, WebhookPayload
from stage_context import REPO, make_context

BILLABLE = str(uuid.uuid4())
INFO = str(uuid.uuid4())
FIELDS = ("interactionId", "customerId", "startedAt", "endedAt", "durationSeconds", "wrapupCode")


@pytest.fixture
def fake():
    with FakeGenesys() as f:
        f.wrapup_codes.update({BILLABLE: "Billable Service", INFO: "Information Only"})
        yield f


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(timezone.utc)

    def __call__(self) -> datetime:
        return self.now


def context(tmp_path, fake, **settings):
    ctx = make_context(tmp_path, **{"genesys_client_id": fake.client_id, "genesys_client_secret": fake.client_secret,
                                    "genesys_api_url": fake.api_url, "genesys_login_url": fake.login_url,
                                    "assembly_wait": 4, "reconcile_hours": 0, **settings})
    ctx.clock = Clock()
    return ctx


def contact(fake, name="Jane Doe"):
    cid = str(uuid.uuid4())
    first, last = name.split()
    fake.contacts[cid] = {"id": cid, "firstName": first, "lastName": last, "workEmail": "jane@example.com",
                          "cellPhone": {"e164": "+13175550100"},
                          "address": {"address1": "1 Main St", "city": "Indianapolis", "state": "IN",
                                      "postalCode": "46204", "countryCode": "US"}}
    return cid


async def post_events(p: Pipeline, events: list[dict]) -> None:
    """What the bridge publishes for each EventBridge post."""
    for body in events:
        key, record = record_of("eventbridge", EventBridgeEvent.model_validate(body))
        await p.send("genesys.events", record, key=key)


def by_id(records: list[dict]) -> dict[str, dict]:
    return {r["interactionId"]: r for r in records}


def test_detail_events_in_any_order_repeated_become_one_interaction(tmp_path, fake):
    ctx = context(tmp_path, fake)
    sc = Scenario(external_contact_id=contact(fake), agents=[Leg("u1", "q1", 300, 45.4, BILLABLE)])
    events = sc.eventbridge_events()
    shuffled = events + events[:2]  # repeats
    random.Random(3).shuffle(shuffled)

    async def go():
        async with Pipeline(ctx) as p:
            await post_events(p, shuffled)
            await p.settle()
    asyncio.run(go())
    [got] = ctx.out("callbill.interactions")  # repeats and late events do not emit again
    assert got["interactionId"] == sc.conversation_id and got["source"] == "eventbridge"
    assert got["wrapupCode"] == "Billable Service" and got["wrapupCodeId"] == BILLABLE
    assert got["durationSeconds"] == 345  # 345.4 s of customer connected time
    assert got["mediaType"] == "VOICE"
    # the contact was found only through the API: it is now in the directory, by id
    assert got["customerId"] == f"genesys:{sc.external_contact_id}"
    [customer] = ctx.out("crm.customers")
    assert customer["externalContactIds"] == [sc.external_contact_id] and customer.get("timezone") is None
    assert ctx.directory.customer_for_contacts([sc.external_contact_id]) == got["customerId"]
    assert [b["interactionId"] for b in ctx.out("callbill.billable")] == [sc.conversation_id]


def test_transfer_with_two_agents_bills_on_any_billable_wrapup(tmp_path, fake):
    ctx = context(tmp_path, fake)
    sc = Scenario(external_contact_id=contact(fake),
                  agents=[Leg("u1", "q1", 120, 0, INFO), Leg("u2", "q2", 200, 30, BILLABLE)])

    async def go():
        async with Pipeline(ctx) as p:
            await post_events(p, sc.eventbridge_events())
            await p.settle()
    asyncio.run(go())
    [got] = ctx.out("callbill.interactions")
    assert got["wrapupCode"] == "Billable Service"
    assert got["durationSeconds"] == 350  # the customer's connected time, legs one after another
    assert [b["interactionId"] for b in ctx.out("callbill.billable")] == [sc.conversation_id]


def test_unknown_wrapup_id_and_system_codes(tmp_path, fake):
    ctx = context(tmp_path, fake)
    unknown = Scenario(external_contact_id=contact(fake), agents=[Leg("u1", "q1", 60, 0, str(uuid.uuid4()))])
    timeout_code = Scenario(external_contact_id=contact(fake), agents=[Leg("u1", "q1", 60, 0, "ININ-WRAP-UP-TIMEOUT")])

    async def go():
        async with Pipeline(ctx) as p:
            await post_events(p, unknown.eventbridge_events() + timeout_code.eventbridge_events())
            await p.settle()
    asyncio.run(go())
    assert by_id(ctx.out("callbill.review"))[unknown.conversation_id]["reason"] == "UNKNOWN_WRAPUP_CODE"
    got = by_id(ctx.out("callbill.interactions"))[timeout_code.conversation_id]
    assert got["wrapupCode"] == "ININ-WRAP-UP-TIMEOUT"  # tolerated, not billable
    assert [a["outcome"] for a in ctx.out("callbill.audit")
            if a["interactionId"] == timeout_code.conversation_id and a["stage"] == "intake"] == ["NOT_BILLABLE"]


def test_partial_conversation_is_completed_from_analytics_or_reviewed(tmp_path, fake):
    ctx = context(tmp_path, fake)
    healed = Scenario(external_contact_id=contact(fake), agents=[Leg("u1", "q1", 90, 0, BILLABLE)])
    fake.conversations[healed.conversation_id] = healed.analytics_conversation()
    stuck = Scenario(external_contact_id=contact(fake), agents=[Leg("u1", "q1", 90, 0, BILLABLE)])

    async def go():
        async with Pipeline(ctx) as p:
            # only the customer.end arrives: the acw is lost upstream
            await post_events(p, [e for e in healed.eventbridge_events() + stuck.eventbridge_events()
                                  if e["detail"]["topicName"].endswith("customer.end")])
            await p.settle()
            await p.sweep()  # before CALLBILL_ASSEMBLY_WAIT: nothing to remind
            await p.settle()
            assert ctx.out("callbill.interactions") == [] and ctx.out("callbill.review") == []
            ctx.clock.now += timedelta(seconds=5)
            await p.sweep()
            await p.settle()
    asyncio.run(go())
    got = by_id(ctx.out("callbill.interactions"))[healed.conversation_id]
    assert got["wrapupCode"] == "Billable Service" and got["source"] == "backfill"
    r = by_id(ctx.out("callbill.review"))[stuck.conversation_id]
    assert r["reason"] == "INCOMPLETE_CONVERSATION" and "wrap-up code" in r["detail"]


def test_three_paths_give_the_same_interaction(tmp_path, fake):
    contact_id = contact(fake)
    sc = Scenario(external_contact_id=contact_id, agents=[Leg("u1", "q1", 420, 12.6, BILLABLE)])
    fake.conversations[sc.conversation_id] = sc.analytics_conversation()
    customer = f"genesys:{contact_id}"
    since, until = datetime(2026, 11, 24, tzinfo=timezone.utc), datetime(2026, 11, 25, tzinfo=timezone.utc)
    contexts = [context(tmp_path / path, fake) for path in ("events", "webhook", "backfill")]

    async def go():
        via_events, via_webhook, via_backfill = (Pipeline(c) for c in contexts)
        await post_events(via_events, sc.eventbridge_events())
        key, record = record_of("webhook", WebhookPayload.model_validate(sc.webhook_payload(customer, "Billable Service")))
        await via_webhook.send("genesys.events", record, key=key)

        async def send(key: str, value: bytes) -> None:
            await via_backfill.send("genesys.events", value, key=key)
        services = contexts[2].services
        summary = await backfill(services.genesys, services.wrapup_codes, since, until, send,
                                 contexts[2].settings.billable_code_set)
        assert summary.counts["published"] == 1
        for p in (via_events, via_webhook, via_backfill):
            await p.settle()
        # running the backfill again is harmless: the interaction is assembled already
        await backfill(services.genesys, services.wrapup_codes, since, until, send,
                       contexts[2].settings.billable_code_set)
        await via_backfill.settle()
        for p in (via_events, via_webhook, via_backfill):
            await p.close()
    asyncio.run(go())
    records = [c.out("callbill.interactions") for c in contexts]
    assert [len(r) for r in records] == [1, 1, 1]
    assert [r[0]["source"] for r in records] == ["eventbridge", "webhook", "backfill"]
    shapes = [{k: r[0].get(k) for k in FIELDS} for r in records]
    assert shapes[0] == shapes[1] == shapes[2], json.dumps(shapes, indent=1)
    assert contexts[2].outcomes("assemble") == ["ASSEMBLED", "ALREADY_ASSEMBLED"]


def test_the_backfill_command_counts_what_it_would_publish(tmp_path, fake):
    """`callbill backfill --dry-run` reads the Analytics API and publishes nothing (so it
    needs no broker); the publishing run is in tests/integration/test_backfill.py."""
    sc = Scenario(external_contact_id=contact(fake), agents=[Leg("u1", "q1", 420, 12.6, BILLABLE)])
    fake.conversations[sc.conversation_id] = sc.analytics_conversation()
    info = Scenario(external_contact_id=contact(fake), agents=[Leg("u1", "q1", 60, 0, INFO)])
    fake.conversations[info.conversation_id] = info.analytics_conversation()
    env = {"PATH": "/usr/bin:/bin", "CALLBILL_GENESYS_CLIENT_ID": fake.client_id,
           "CALLBILL_GENESYS_CLIENT_SECRET": fake.client_secret, "CALLBILL_GENESYS_API_URL": fake.api_url,
           "CALLBILL_GENESYS_LOGIN_URL": fake.login_url, "CALLBILL_DATA_DIR": str(tmp_path / "data")}
    out = subprocess.run([sys.executable, "-m", "app.cli", "backfill", "--since", "2026-11-24T00:00:00Z",
                          "--until", "2026-11-25T00:00:00Z", "--dry-run"], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "(dry run)" in out.stdout and "2 conversations: 1 billable published, 1 not billable" in out.stdout
    assert fake.count("POST", "/api/v2/analytics/conversations/details/query") >= 1
    bad = subprocess.run([sys.executable, "-m", "app.cli", "backfill", "--since", "2026-11-25T00:00:00Z",
                          "--until", "2026-11-24T00:00:00Z", "--dry-run"], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "--until must be after --since" in bad.stderr


def test_reconciliation_picks_up_a_conversation_whose_events_never_arrived(tmp_path, fake):
    sc = Scenario(external_contact_id=contact(fake), agents=[Leg("u1", "q1", 75, 0, BILLABLE)])
    fake.conversations[sc.conversation_id] = sc.analytics_conversation()
    fake.expire_tokens()  # a token expiring mid-run is renewed transparently
    ctx = context(tmp_path, fake, reconcile_hours=24 * 365 * 2)

    async def go():
        async with Pipeline(ctx) as p:
            await p.reconcile()
            await p.settle()
            assert [i["interactionId"] for i in ctx.out("callbill.interactions")] == [sc.conversation_id]
            fake.expire_tokens()
            sc2 = Scenario(external_contact_id=contact(fake), agents=[Leg("u1", "q1", 75, 0, BILLABLE)])
            fake.conversations[sc2.conversation_id] = sc2.analytics_conversation()
            await p.reconcile()  # the next round: the first is assembled already, the new one is picked up
            await p.settle()
            return sc2
    sc2 = asyncio.run(go())
    got = by_id(ctx.out("callbill.interactions"))
    assert set(got) == {sc.conversation_id, sc2.conversation_id}
    assert got[sc.conversation_id]["source"] == "backfill"
    assert got[sc.conversation_id]["customerId"] == f"genesys:{sc.external_contact_id}"
    assert fake.token_requests >= 2


def test_customer_from_the_directory_by_external_contact_id(tmp_path, fake):
    ctx = context(tmp_path, fake)
    contact_id = str(uuid.uuid4())  # not known to the Genesys API: the directory must answer
    sc = Scenario(external_contact_id=contact_id, agents=[Leg("u1", "q1", 60, 0, BILLABLE)])

    async def go():
        async with Pipeline(ctx) as p:
            await p.send("crm.customers", {"customerId": "CUST-42", "externalContactIds": [contact_id],
                                           "name": "Kenji Sato", "timezone": "Asia/Tokyo", "currency": "JPY"})
            await post_events(p, sc.eventbridge_events())
            await p.settle()
    asyncio.run(go())
    [got] = ctx.out("callbill.interactions")
    assert got["customerId"] == "CUST-42"
    assert fake.count("GET", "/api/v2/externalcontacts") == 0
