"""Genesys Cloud as it is: detail events, wrap-up code ids, contacts, backfill, reconciliation.

A real worker on a real broker; the Genesys API is the local fake (the one place a fake is
right: the real service cannot run here).
"""
import json
import random
import subprocess
import sys
import uuid

import pytest

from fake_genesys import FakeGenesys, Leg, Scenario
from kafka_harness import REPO, read_json

BILLABLE = str(uuid.uuid4())
INFO = str(uuid.uuid4())
FIELDS = ("interactionId", "customerId", "startedAt", "endedAt", "durationSeconds", "wrapupCode")


@pytest.fixture
def fake():
    with FakeGenesys() as f:
        f.wrapup_codes.update({BILLABLE: "Billable Service", INFO: "Information Only"})
        yield f


def genesys_env(fake, **extra):
    env = {
        "CALLBILL_GENESYS_CLIENT_ID": fake.client_id, "CALLBILL_GENESYS_CLIENT_SECRET": fake.client_secret,
        "CALLBILL_GENESYS_API_URL": fake.api_url, "CALLBILL_GENESYS_LOGIN_URL": fake.login_url,
        "CALLBILL_ASSEMBLY_WAIT": "4", "CALLBILL_ASSEMBLY_SWEEP_INTERVAL": "1", "CALLBILL_RECONCILE_HOURS": "0",
    }
    env.update({k: str(v) for k, v in extra.items()})
    return env


def contact(fake, name="Jane Doe"):
    cid = str(uuid.uuid4())
    first, last = name.split()
    fake.contacts[cid] = {"id": cid, "firstName": first, "lastName": last, "workEmail": "jane@example.com",
                          "cellPhone": {"e164": "+13175550100"},
                          "address": {"address1": "1 Main St", "city": "Indianapolis", "state": "IN",
                                      "postalCode": "46204", "countryCode": "US"}}
    return cid


def post_events(worker, events):
    for e in events:
        r = worker.post(e, path="/genesys/eventbridge")
        assert r.status_code == 202, r.text


def interactions(bootstrap, worker, ids, timeout=30):
    got = read_json(bootstrap, worker.topic("callbill.interactions"), timeout=timeout,
                    until=lambda msgs: set(ids) <= {m["interactionId"] for m in msgs})
    return {m["interactionId"]: m for m in got}


def reviews(bootstrap, worker, ids, timeout=30):
    got = read_json(bootstrap, worker.topic("callbill.review"), timeout=timeout,
                    until=lambda msgs: set(ids) <= {m["interactionId"] for m in msgs})
    return {m["interactionId"]: m for m in got}


def test_detail_events_in_any_order_repeated_become_one_interaction(make_worker, kafka_bootstrap, fake):
    w = make_worker(extra_env=genesys_env(fake)).start()
    sc = Scenario(external_contact_id=contact(fake), agents=[Leg("u1", "q1", 300, 45.4, BILLABLE)])
    events = sc.eventbridge_events()
    shuffled = events + events[:2]  # repeats
    random.Random(3).shuffle(shuffled)
    post_events(w, shuffled)
    got = interactions(kafka_bootstrap, w, [sc.conversation_id])[sc.conversation_id]
    assert got["source"] == "eventbridge"
    assert got["wrapupCode"] == "Billable Service" and got["wrapupCodeId"] == BILLABLE
    assert got["durationSeconds"] == 345  # 345.4 s of customer connected time
    assert got["mediaType"] == "VOICE"
    # the contact was found only through the API: it is now in the directory, by id
    assert got["customerId"] == f"genesys:{sc.external_contact_id}"
    customers = read_json(kafka_bootstrap, w.topic("crm.customers"), until=lambda m: len(m) >= 1)
    assert customers[0]["externalContactIds"] == [sc.external_contact_id]
    assert customers[0]["timezone"] is None
    billable = read_json(kafka_bootstrap, w.topic("callbill.billable"), until=lambda m: len(m) >= 1)
    assert [b["interactionId"] for b in billable] == [sc.conversation_id]
    all_interactions = read_json(kafka_bootstrap, w.topic("callbill.interactions"), timeout=3)
    assert len(all_interactions) == 1  # repeats and late events do not emit again


def test_transfer_with_two_agents_bills_on_any_billable_wrapup(make_worker, kafka_bootstrap, fake):
    w = make_worker(extra_env=genesys_env(fake)).start()
    sc = Scenario(external_contact_id=contact(fake),
                  agents=[Leg("u1", "q1", 120, 0, INFO), Leg("u2", "q2", 200, 30, BILLABLE)])
    post_events(w, sc.eventbridge_events())
    got = interactions(kafka_bootstrap, w, [sc.conversation_id])[sc.conversation_id]
    assert got["wrapupCode"] == "Billable Service"
    assert got["durationSeconds"] == 350  # the customer's connected time, legs one after another
    read_json(kafka_bootstrap, w.topic("callbill.billable"), until=lambda m: len(m) >= 1)


def test_unknown_wrapup_id_and_system_codes(make_worker, kafka_bootstrap, fake):
    w = make_worker(extra_env=genesys_env(fake)).start()
    unknown = Scenario(external_contact_id=contact(fake), agents=[Leg("u1", "q1", 60, 0, str(uuid.uuid4()))])
    timeout_code = Scenario(external_contact_id=contact(fake), agents=[Leg("u1", "q1", 60, 0, "ININ-WRAP-UP-TIMEOUT")])
    post_events(w, unknown.eventbridge_events() + timeout_code.eventbridge_events())
    r = reviews(kafka_bootstrap, w, [unknown.conversation_id])[unknown.conversation_id]
    assert r["reason"] == "UNKNOWN_WRAPUP_CODE"
    got = interactions(kafka_bootstrap, w, [timeout_code.conversation_id])[timeout_code.conversation_id]
    assert got["wrapupCode"] == "ININ-WRAP-UP-TIMEOUT"  # tolerated, not billable
    audit = read_json(kafka_bootstrap, w.topic("callbill.audit"),
                      until=lambda m: any(a["interactionId"] == timeout_code.conversation_id and a["stage"] == "intake" for a in m))
    assert [a["outcome"] for a in audit if a["interactionId"] == timeout_code.conversation_id and a["stage"] == "intake"] == ["NOT_BILLABLE"]


def test_partial_conversation_is_completed_from_analytics_or_reviewed(make_worker, kafka_bootstrap, fake):
    w = make_worker(extra_env=genesys_env(fake)).start()
    healed = Scenario(external_contact_id=contact(fake), agents=[Leg("u1", "q1", 90, 0, BILLABLE)])
    fake.conversations[healed.conversation_id] = healed.analytics_conversation()
    stuck = Scenario(external_contact_id=contact(fake), agents=[Leg("u1", "q1", 90, 0, BILLABLE)])
    # only the customer.end arrives: the acw is lost upstream
    post_events(w, [e for e in healed.eventbridge_events() + stuck.eventbridge_events()
                    if e["detail"]["topicName"].endswith("customer.end")])
    got = interactions(kafka_bootstrap, w, [healed.conversation_id], timeout=40)[healed.conversation_id]
    assert got["wrapupCode"] == "Billable Service" and got["source"] == "backfill"
    r = reviews(kafka_bootstrap, w, [stuck.conversation_id], timeout=40)[stuck.conversation_id]
    assert r["reason"] == "INCOMPLETE_CONVERSATION" and "wrap-up code" in r["detail"]


def test_three_paths_give_the_same_interaction(make_worker, kafka_bootstrap, fake, tmp_path):
    contact_id = contact(fake)
    sc = Scenario(external_contact_id=contact_id, agents=[Leg("u1", "q1", 420, 12.6, BILLABLE)])
    fake.conversations[sc.conversation_id] = sc.analytics_conversation()
    customer = f"genesys:{contact_id}"

    via_events = make_worker(extra_env=genesys_env(fake)).start()
    post_events(via_events, sc.eventbridge_events())

    via_webhook = make_worker(extra_env=genesys_env(fake)).start()
    assert via_webhook.post(sc.webhook_payload(customer, "Billable Service")).status_code == 202

    via_backfill = make_worker(extra_env=genesys_env(fake)).start()
    env = {**via_backfill.env()}
    out = subprocess.run([sys.executable, "-m", "app.cli", "backfill", "--since", "2026-11-24T00:00:00Z",
                          "--until", "2026-11-25T00:00:00Z"], cwd=REPO, env=env, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    assert "1 billable published" in out.stdout

    records = [interactions(kafka_bootstrap, w, [sc.conversation_id])[sc.conversation_id]
               for w in (via_events, via_webhook, via_backfill)]
    assert [r["source"] for r in records] == ["eventbridge", "webhook", "backfill"]
    shapes = [{k: r.get(k) for k in FIELDS} for r in records]
    assert shapes[0] == shapes[1] == shapes[2], json.dumps(shapes, indent=1)
    # running the backfill again is harmless: the ledger already has it
    again = subprocess.run([sys.executable, "-m", "app.cli", "backfill", "--since", "2026-11-24T00:00:00Z",
                            "--until", "2026-11-25T00:00:00Z"], cwd=REPO, env=env, capture_output=True, text=True,
                           timeout=60)
    assert again.returncode == 0
    audit = read_json(kafka_bootstrap, via_backfill.topic("callbill.audit"),
                      until=lambda m: any(a["outcome"] == "ALREADY_ASSEMBLED" for a in m))
    assert any(a["outcome"] == "ALREADY_ASSEMBLED" for a in audit)


def test_reconciliation_picks_up_a_conversation_whose_events_never_arrived(make_worker, kafka_bootstrap, fake):
    sc = Scenario(external_contact_id=contact(fake), agents=[Leg("u1", "q1", 75, 0, BILLABLE)])
    fake.conversations[sc.conversation_id] = sc.analytics_conversation()
    fake.expire_tokens()  # a token expiring mid-run is renewed transparently
    w = make_worker(extra_env=genesys_env(fake, CALLBILL_RECONCILE_HOURS=24 * 365 * 2,
                                          CALLBILL_RECONCILE_INTERVAL=2)).start()
    got = interactions(kafka_bootstrap, w, [sc.conversation_id], timeout=40)[sc.conversation_id]
    assert got["source"] == "backfill" and got["customerId"] == f"genesys:{sc.external_contact_id}"
    fake.expire_tokens()
    sc2 = Scenario(external_contact_id=contact(fake), agents=[Leg("u1", "q1", 75, 0, BILLABLE)])
    fake.conversations[sc2.conversation_id] = sc2.analytics_conversation()
    interactions(kafka_bootstrap, w, [sc2.conversation_id], timeout=40)
    assert fake.token_requests >= 2


def test_customer_from_the_directory_by_external_contact_id(make_worker, kafka_bootstrap, fake):
    from kafka_harness import produce_raw

    import time

    w = make_worker(extra_env=genesys_env(fake)).start()
    contact_id = str(uuid.uuid4())  # not known to the Genesys API: the directory must answer
    produce_raw(kafka_bootstrap, w.topic("crm.customers"), b"CUST-42", json.dumps({
        "customerId": "CUST-42", "externalContactIds": [contact_id], "name": "Kenji Sato",
        "timezone": "Asia/Tokyo", "currency": "JPY"}).encode())
    time.sleep(2)  # the directory view follows the topic live
    sc = Scenario(external_contact_id=contact_id, agents=[Leg("u1", "q1", 60, 0, BILLABLE)])
    post_events(w, sc.eventbridge_events())
    got = interactions(kafka_bootstrap, w, [sc.conversation_id])[sc.conversation_id]
    assert got["customerId"] == "CUST-42"
    assert fake.count("GET", "/api/v2/externalcontacts") == 0
