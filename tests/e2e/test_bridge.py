"""The HTTP bridge on a running worker: what it accepts lands in Kafka, what it refuses does not."""
import json
import uuid

import httpx
import pytest

from kafka_harness import SECRET, read_json, webhook


@pytest.fixture(scope="module")
def bridge(kafka_bootstrap, tmp_path_factory):
    from kafka_harness import Worker

    w = Worker(bootstrap=kafka_bootstrap, tmp=tmp_path_factory.mktemp("bridge")).start()
    yield w
    w.stop()


def iid() -> str:
    return f"gen-{uuid.uuid4().hex[:12]}"


def test_billable_event_goes_from_http_to_callbill_billable(bridge, kafka_bootstrap):
    i = iid()
    r = bridge.post(webhook(i))
    assert r.status_code == 202, r.text
    assert r.json() == {"accepted": i}
    out = read_json(kafka_bootstrap, bridge.topic("callbill.billable"),
                    until=lambda msgs: any(m["interactionId"] == i for m in msgs))
    [record] = [m for m in out if m["interactionId"] == i]
    assert record["customerId"] == "CUST-1" and record["source"] == "webhook"
    assert record["endedAt"].startswith("2026-11-24T22:20:00")
    audit = read_json(kafka_bootstrap, bridge.topic("callbill.audit"),
                      until=lambda msgs: any(m["interactionId"] == i and m["stage"] == "intake" for m in msgs))
    # (billing may have decided too by the time the read ends: its records are not this test's)
    assert [(a["stage"], a["outcome"]) for a in audit
            if a["interactionId"] == i and a["stage"] in ("assemble", "intake")] == [
        ("assemble", "ASSEMBLED"), ("intake", "FORWARDED")]


def test_bearer_secret_is_accepted(bridge):
    r = bridge.post(webhook(iid()), signed=False, headers={"Authorization": f"Bearer {SECRET}"})
    assert r.status_code == 202, r.text


def test_eventbridge_event_is_accepted_and_keyed_by_conversation(bridge, kafka_bootstrap):
    conv = str(uuid.uuid4())
    body = {"detail-type": "v2.detail.events.conversation.{id}.customer.end",
            "source": "aws.partner/genesys.com/cloud/org/callbill",
            "detail": {"topicName": f"v2.detail.events.conversation.{conv}.customer.end",
                       "eventBody": {"conversationId": conv, "mediaType": "VOICE", "eventTime": 1795651150000}}}
    r = bridge.post(body, path="/genesys/eventbridge")
    assert r.status_code == 202, r.text
    assert r.json() == {"accepted": conv}
    audit = read_json(kafka_bootstrap, bridge.topic("callbill.audit"),
                      until=lambda msgs: any(m["interactionId"] == conv for m in msgs))
    assert any(a["interactionId"] == conv and a["outcome"] == "EVENT_RECEIVED" for a in audit)


BAD = [
    ("invalid json", b'{"interactionId": ', {}, 400, "not valid JSON"),
    ("not utf-8", b'\xff\xfe{}', {}, 400, "UTF-8"),
    ("array body", b'[1, 2]', {}, 422, "JSON object"),
    ("missing field", json.dumps({k: v for k, v in webhook("gen-bad1").items() if k != "timestamp"}).encode(),
     {}, 422, "timestamp"),
    ("mistyped field", json.dumps(webhook("gen-bad2", durationSeconds="ten")).encode(), {}, 422, "durationSeconds"),
    ("naive timestamp", json.dumps(webhook("gen-bad3", timestamp="2026-11-24T22:15:00")).encode(), {}, 422, "timestamp"),
    ("wrong content type", json.dumps(webhook("gen-bad4")).encode(), {"Content-Type": "text/plain"}, 415, "Content-Type"),
]


@pytest.mark.parametrize("name,body,headers,status,names", BAD, ids=[b[0] for b in BAD])
def test_bad_input_gets_a_4xx_naming_the_problem(bridge, name, body, headers, status, names):
    r = bridge.post(body, headers=headers)
    assert r.status_code == status, r.text
    assert names in r.json()["error"]


def test_oversize_body_is_413(bridge):
    big = webhook("gen-big", agentName="x" * 200_000)
    r = bridge.post(big)
    assert r.status_code == 413
    # also when the sender streams without a Content-Length
    raw = json.dumps(big).encode()
    from app.cli import sign

    def chunks():
        for i in range(0, len(raw), 8192):
            yield raw[i:i + 8192]
    r = httpx.post(bridge.url + "/genesys/webhook", content=chunks(), timeout=15,
                   headers={"Content-Type": "application/json", "X-Callbill-Signature": sign(raw, SECRET)})
    assert r.status_code == 413


@pytest.mark.parametrize("headers", [
    {},
    {"X-Callbill-Signature": "sha256=" + "0" * 64},
    {"X-Callbill-Signature": "md5=abc"},
    {"Authorization": "Bearer wrong"},
    {"Authorization": f"Basic {SECRET}"},
], ids=["none", "wrong signature", "malformed signature", "wrong bearer", "basic"])
def test_bad_credentials_are_401(bridge, headers):
    r = bridge.post(webhook("gen-auth"), signed=False, headers=headers)
    assert r.status_code == 401
    assert "error" in r.json()


def test_signature_over_a_different_body_is_401(bridge):
    from app.cli import sign

    signed_for = json.dumps(webhook("gen-sig-a")).encode()
    r = bridge.post(webhook("gen-sig-b"), signed=False, headers={"X-Callbill-Signature": sign(signed_for, SECRET)})
    assert r.status_code == 401


def test_refused_requests_never_reach_kafka(bridge, kafka_bootstrap):
    marker = iid()
    assert bridge.post(webhook(marker)).status_code == 202
    events = read_json(kafka_bootstrap, bridge.topic("genesys.events"),
                       until=lambda msgs: any(m["payload"].get("interactionId") == marker for m in msgs))
    ids = {m["payload"].get("interactionId") for m in events}
    refused = {"gen-bad1", "gen-bad2", "gen-bad3", "gen-bad4", "gen-big", "gen-auth", "gen-sig-a", "gen-sig-b"}
    assert not ids & refused


def test_health_and_metrics(bridge):
    h = httpx.get(bridge.url + "/health", timeout=5)
    assert h.status_code == 200 and h.json() == {"status": "ok", "kafka": "up", "ready": True}
    m = httpx.get(bridge.url + "/metrics", timeout=5).text
    assert 'callbill_bridge_requests_total{endpoint="webhook",status="202"}' in m


def test_table_pages_are_not_served(bridge):
    assert httpx.get(bridge.url + "/table/", timeout=5).status_code == 404


def test_provider_bounce_endpoint_publishes_what_it_accepts(bridge, kafka_bootstrap):
    """/bounces/provider (SES through SNS here): authenticated like the bridge, a report goes
    onto callbill.bounces; what the bounces stage decides is tested in tests/stages."""
    ses = {"notificationType": "Complaint", "complaint": {"complainedRecipients": [{"emailAddress": "ok@example.com"}],
                                                          "complaintFeedbackType": "abuse"},
           "mail": {"commonHeaders": {"messageId": "<b-ok.invoice@callbill.example>"}}}
    assert bridge.post(ses, "/bounces/provider", signed=False).status_code == 401
    r = bridge.post({"Type": "Notification", "Message": json.dumps(ses)}, "/bounces/provider")
    assert r.status_code == 202 and r.json() == {"accepted": 1}
    bad = bridge.post({"nonsense": True}, "/bounces/provider")
    assert bad.status_code == 422 and "ok@example.com" not in bad.text
    out = read_json(kafka_bootstrap, bridge.topic("callbill.bounces"), until=lambda m: len(m) >= 1)
    assert [(b["address"], b["kind"], b.get("interactionId")) for b in out] == [("ok@example.com", "complaint", "b-ok")]
