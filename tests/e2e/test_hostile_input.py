"""Hostile input: property-based fuzzing of both bridge endpoints, and poison bytes on every topic."""
from __future__ import annotations

import base64
import json
import string

import httpx
import pytest
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from kafka_harness import SECRET, produce_raw, read_json, read_topic, sign, webhook
from schemas.genesys import EventBridgeEvent, WebhookPayload

pytestmark = pytest.mark.kafka

EXAMPLES = 5000  # per endpoint: 10,000 requests in all
OK = {202, 400, 401, 413, 415, 422}

json_leaf = st.one_of(st.none(), st.booleans(), st.integers(min_value=-2**70, max_value=2**70),
                      st.floats(allow_nan=False), st.text(max_size=40))
json_value = st.recursive(json_leaf, lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=10), c, max_size=4),
                          max_leaves=12)
ids = st.one_of(st.text(alphabet=string.ascii_letters + string.digits + "-._:", min_size=1, max_size=140),
                st.text(max_size=20))
times = st.one_of(st.just("2026-11-24T22:15:00Z"), st.just("2026-11-24T22:15:00"), st.just("yesterday"),
                  st.datetimes().map(lambda d: d.isoformat()), json_leaf)


@st.composite
def webhook_bodies(draw) -> dict:
    """Mostly well-formed webhook payloads with one or more fields broken, dropped or added."""
    body = {"interactionId": draw(ids), "customerId": draw(st.one_of(st.none(), st.text(max_size=150))),
            "timestamp": draw(times), "durationSeconds": draw(st.one_of(st.integers(-5, 10**7), json_leaf)),
            "agentName": draw(st.one_of(st.none(), st.text(max_size=300))),
            "serviceType": draw(st.one_of(st.none(), st.text(max_size=300))),
            "billingCode": draw(st.one_of(st.just("Billable Service"), st.text(max_size=300), json_leaf))}
    for key in draw(st.lists(st.sampled_from(sorted(body)), max_size=3)):
        body.pop(key, None)
    body.update(draw(st.dictionaries(st.text(max_size=12), json_value, max_size=2)))
    return body


@st.composite
def eventbridge_bodies(draw) -> dict:
    kind = draw(st.sampled_from(["customer.end", "acw", "wrapup", "other"]))
    cid = draw(ids)
    body = {"version": "0", "id": draw(st.text(max_size=40)), "detail-type": draw(st.text(max_size=40)),
            "source": draw(st.text(max_size=40)),
            "detail": {"topicName": draw(st.one_of(st.just(f"v2.detail.events.conversation.{cid}.{kind}"),
                                                   st.text(max_size=80), json_leaf)),
                       "version": "2", "eventBody": draw(st.one_of(
                           st.fixed_dictionaries({"conversationId": st.just(cid), "participantId": st.text(max_size=40),
                                                  "endTime": times, "wrapupCode": st.text(max_size=40)}),
                           json_value))}}
    if draw(st.booleans()):
        body["detail"] = draw(json_value)
    return body


def raw_or_json(strategy):
    """JSON bodies, and now and then bytes that are not JSON (or not UTF-8) at all."""
    return st.one_of(strategy.map(lambda b: json.dumps(b).encode()),
                     st.binary(max_size=200), st.text(max_size=200).map(str.encode))


def check(client: httpx.Client, path: str, body: bytes, model, signed: bool, accepted: list) -> None:
    headers = {"Content-Type": "application/json"}
    if signed:
        headers["X-Callbill-Signature"] = sign(body, SECRET)
    r = client.post(path, content=body, headers=headers)
    assert r.status_code in OK, (r.status_code, r.text[:300])
    if r.status_code == 202:
        assert signed
        try:
            model.model_validate(json.loads(body))  # nothing invalid accepted
        except (ValidationError, ValueError) as e:
            raise AssertionError(f"accepted an invalid body: {e}") from None
        accepted.append(r.json()["accepted"])
    else:
        assert "error" in r.json()


def test_fuzzing_both_bridge_endpoints(worker, kafka_bootstrap):
    accepted: list[str] = []
    with httpx.Client(base_url=worker.url, timeout=30) as client:
        @seed(20261125)
        @settings(max_examples=EXAMPLES, deadline=None, database=None,
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
        @given(body=raw_or_json(webhook_bodies()), signed=st.just(True))
        def fuzz_webhook(body: bytes, signed: bool) -> None:
            check(client, "/genesys/webhook", body, WebhookPayload, signed, accepted)

        @seed(20261126)
        @settings(max_examples=EXAMPLES, deadline=None, database=None,
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
        @given(body=raw_or_json(eventbridge_bodies()), signed=st.integers(0, 9).map(lambda n: n > 0))
        def fuzz_eventbridge(body: bytes, signed: bool) -> None:
            check(client, "/genesys/eventbridge", body, EventBridgeEvent, signed, accepted)

        fuzz_webhook()
        fuzz_eventbridge()
    assert accepted, "the fuzzer never produced a valid body: it tests nothing"
    # nothing half-written: exactly the accepted requests are on the topic
    events = read_topic(kafka_bootstrap, worker.topic("genesys.events"), until=lambda m: len(m) >= len(accepted),
                        timeout=60)
    assert len(events) == len(accepted)
    assert worker.proc.poll() is None


TOPICS = ["genesys.events", "callbill.interactions", "callbill.billable", "callbill.invoices", "callbill.documents",
          "callbill.bounces", "callbill.acks", "callbill.review", "callbill.review-actions", "callbill.retry"]
POISON = [b"\xff\x00\xfe not json", b"[]", b'{"interactionId": 42}', b"{" * 50, b'"just a string"']


def test_poison_bytes_on_every_topic_go_to_the_dlq_and_the_pipeline_carries_on(make_worker, kafka_bootstrap,
                                                                               mail_sink):
    from test_billing import produce
    from test_delivery import cust, wait_for

    w = make_worker(partitions=2)
    from kafka_harness import create_topics

    create_topics(kafka_bootstrap, w.prefix, w.partitions)
    produce(kafka_bootstrap, w.topic("crm.customers"), [("CUST-1", cust("CUST-1", email="p@example.com"))])
    w.start()
    sent = 0
    for topic in TOPICS:
        for i, value in enumerate(POISON):
            produce_raw(kafka_bootstrap, w.topic(topic), f"{topic}-{i}".encode(), value)
            sent += 1
    assert w.post(webhook("after-the-poison", "CUST-1")).status_code == 202
    assert wait_for(lambda: len(mail_sink.messages()) == 1, 90)  # the pipeline carried on, end to end
    dlq = read_json(kafka_bootstrap, w.topic("callbill.dlq"), until=lambda m: len(m) >= sent, timeout=60)
    keys = {base64.b64decode(d["key"]).decode() for d in dlq}
    assert keys == {f"{t}-{i}" for t in TOPICS for i in range(len(POISON))}
    for d in dlq:
        assert d["reason"] and d["stage"] and base64.b64decode(d["value"]) in POISON
    assert w.proc.poll() is None
