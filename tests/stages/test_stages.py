"""Every stage's decisions, in process: the handlers of agents/ against a context built here.

No broker: outputs are recorded, tables are dicts. What needs a broker (a kill -9 and its
redelivery, rebalances, changelog restore, the bridge's acks, the chaos run) is tested in
tests/integration and tests/e2e; here each rule is one fast test.
"""
from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone

import pytest

from agents import acks, assemble, billing, bounces, delivery, documents, intake, retry, review
from agents.batching import Batch
from domain.ledger import LedgerEntry, State
from schemas.deliveries import AckDue, Bounce
from schemas.documents import DocumentStored
from schemas.events import InteractionCompleted, RetryItem, ReviewAction, ReviewItem
from schemas.genesys import GenesysEvent
from schemas.invoices import Invoice
from stage_context import event, make_context

ENDED = datetime(2026, 11, 24, 22, 20, tzinfo=timezone.utc)


def interaction(iid: str = "gen-1", customer: str | None = "CUST-9876543", code: str = "Billable Service",
                service: str = "Consultation Service - Level 2", **over) -> InteractionCompleted:
    return InteractionCompleted(interactionId=iid, source="webhook", customerId=customer, endedAt=ENDED,
                                startedAt=ENDED - timedelta(seconds=300), durationSeconds=300,
                                serviceType=service, wrapupCode=code, **over)


def run(coro):
    return asyncio.run(coro)


# --- intake -------------------------------------------------------------------------

def test_intake_forwards_once_counts_duplicates_and_reviews_a_missing_customer(tmp_path):
    ctx = make_context(tmp_path)
    first = interaction()
    run(intake.handle(ctx, event(first, offset=1)))
    run(intake.handle(ctx, event(first, offset=2)))  # the same interaction again, a new message
    run(intake.handle(ctx, event(interaction("gen-2", code="Information Only"), offset=3)))
    run(intake.handle(ctx, event(interaction("gen-3", customer=None), offset=4)))
    assert ctx.outcomes("intake") == ["FORWARDED", "DUPLICATE", "NOT_BILLABLE", "REVIEW"]
    assert [m["interactionId"] for m in ctx.out("callbill.billable")] == ["gen-1"]
    assert ctx.ledger.get("gen-1").duplicates == 1
    assert [(r["interactionId"], r["reason"]) for r in ctx.out("callbill.review")] == [("gen-3", "MISSING_CUSTOMER")]
    assert [a["interactionId"] for a in ctx.out("callbill.acks")] == ["gen-1"]  # the acknowledgement timer


def test_intake_reads_the_same_message_again_as_a_redelivery_not_a_duplicate(tmp_path):
    ctx = make_context(tmp_path)
    e = event(interaction(), offset=7)
    run(intake.handle(ctx, e))
    run(intake.handle(ctx, e))  # after a crash, before its forward was known to have landed
    assert ctx.outcomes("intake") == ["FORWARDED", "FORWARDED"]
    assert ctx.ledger.get("gen-1").duplicates == 0


def test_a_record_off_its_keys_partition_is_moved_there_once_and_read_there_as_the_same_message(tmp_path):
    """Issue 17, point 5: another producer's partitioner (CRC32) put the interaction on
    the wrong partition; the guard moves it to its murmur2 partition before intake sees it."""
    from agents.routing import guard_one, home_partition
    from runtime import headers

    ctx = make_context(tmp_path)
    ctx.partitions = lambda topic: 4
    home = home_partition(b"gen-1", 4)
    away = (home + 1) % 4
    handle = lambda e: guard_one(ctx, intake.STAGE, e, lambda ev: intake.handle(ctx, ev))  # noqa: E731
    run(handle(event(interaction(), partition=away, offset=5)))
    moved = [m for m in ctx.sent if m.topic == "callbill.interactions"]
    assert [(m.key, m.partition) for m in moved] == [(b"gen-1", home)]
    assert dict(moved[0].headers)[headers.REROUTED_FROM] == f"callbill.interactions/{away}/5".encode()
    assert ctx.outcomes("intake") == ["REPARTITIONED"]
    assert ctx.ledger.get("gen-1") is None  # nothing decided on the wrong shard

    # the copy, read on its home partition; a second copy (a crash before the commit) is
    # that same message again, not a duplicate
    for offset in (9, 10):
        run(handle(event(moved[0].value, key="gen-1", partition=home, offset=offset, headers=moved[0].headers)))
    assert ctx.outcomes("intake") == ["REPARTITIONED", "FORWARDED", "FORWARDED"]
    assert ctx.ledger.get("gen-1").duplicates == 0  # forwarded again as any redelivery is; billing bills once

    # a moved record still off its partition (the partition count changed) is handled where
    # it is rather than moved in a loop
    run(handle(event(interaction("gen-2"), partition=(home_partition(b"gen-2", 4) + 1) % 4, offset=11,
                     headers=[(headers.REROUTED_FROM, b"callbill.interactions/0/1")])))
    assert ctx.outcomes("intake")[-1] == "FORWARDED"


# --- billing ------------------------------------------------------------------------

def test_billing_issues_one_numbered_invoice_and_never_bills_again(tmp_path):
    ctx = make_context(tmp_path)
    e = event(interaction(), topic="callbill.billable", partition=3, offset=1)
    run(billing.bill(ctx, e, Batch(1, "billing")))
    invoice = ctx.out("callbill.invoices")[0]
    assert invoice["invoiceNumber"] == "INV03-000001" and invoice["currency"] == "USD"
    assert invoice["subtotal"] == "12.50"  # 5 started minutes at 2.50, before tax
    run(billing.bill(ctx, e, Batch(1, "billing")))  # the same message again: republished, same number
    run(billing.bill(ctx, event(interaction(), topic="callbill.billable", partition=3, offset=9), Batch(1, "billing")))
    assert ctx.outcomes("billing") == ["BILLED", "BILLED", "ALREADY_BILLED"]
    assert {i["invoiceNumber"] for i in ctx.out("callbill.invoices")} == {"INV03-000001"}
    run(billing.bill(ctx, event(interaction("gen-2"), topic="callbill.billable", partition=3, offset=10),
                     Batch(1, "billing")))
    assert ctx.out("callbill.invoices")[-1]["invoiceNumber"] == "INV03-000002"


def test_billing_sends_an_unknown_customer_and_an_unpriced_service_to_review_once(tmp_path):
    ctx = make_context(tmp_path)
    unknown = event(interaction("gen-1", customer="CUST-NOBODY"), topic="callbill.billable", offset=1)
    run(billing.bill(ctx, unknown, Batch(1, "billing")))
    run(billing.bill(ctx, unknown, Batch(1, "billing")))  # redelivered: reviewed once
    run(billing.bill(ctx, event(interaction("gen-2", code="Premium Code Nobody Prices"), topic="callbill.billable",
                                offset=2), Batch(1, "billing")))
    assert ctx.outcomes("billing") == ["REVIEW", "ALREADY_IN_REVIEW", "REVIEW"]
    reasons = [r["reason"] for r in ctx.out("callbill.review")]
    assert reasons[0] == "UNKNOWN_CUSTOMER" and len(reasons) == 2
    assert ctx.ledger.get("gen-1").state is State.REVIEW
    assert not ctx.out("callbill.invoices")


# --- documents ----------------------------------------------------------------------

def billed(ctx, iid: str = "gen-1") -> Invoice:
    run(billing.bill(ctx, event(interaction(iid), topic="callbill.billable", offset=hash(iid) % 1000),
                     Batch(1, "billing")))
    return Invoice.model_validate(ctx.out("callbill.invoices")[-1])


def test_documents_stores_the_pdf_once_and_republishes_it_when_read_again(tmp_path):
    ctx = make_context(tmp_path)
    invoice = billed(ctx)
    e = event(invoice, topic="callbill.invoices", offset=5)
    run(documents.document(ctx, e, Batch(1, "documents")))
    doc = ctx.out("callbill.documents")[0]
    stored = tmp_path / "store" / doc["key"]
    assert stored.read_bytes().startswith(b"%PDF") and doc["storage"] == "file"
    mtime = stored.stat().st_mtime_ns
    run(documents.document(ctx, e, Batch(1, "documents")))  # the same message: same object, fresh link
    run(documents.document(ctx, event(invoice, topic="callbill.invoices", offset=6), Batch(1, "documents")))
    assert ctx.outcomes("documents") == ["DOCUMENTED", "DOCUMENTED", "ALREADY_DOCUMENTED"]
    assert stored.stat().st_mtime_ns == mtime  # rendered once
    assert ctx.ledger.get("gen-1").state is State.DOCUMENTED


# --- delivery -----------------------------------------------------------------------

def documented(ctx, iid: str = "gen-1") -> DocumentStored:
    invoice = billed(ctx, iid)
    run(documents.document(ctx, event(invoice, topic="callbill.invoices", offset=1), Batch(1, "documents")))
    return DocumentStored.model_validate(ctx.out("callbill.documents")[-1])


def test_delivery_mails_once_through_a_real_smtp_server(tmp_path, mail_sink):
    ctx = make_context(tmp_path, smtp_url=f"smtp://127.0.0.1:{mail_sink.port}?starttls=off")
    doc = documented(ctx)
    e = event(doc, topic="callbill.documents", offset=3)
    run(delivery.deliver(ctx, e, Batch(1, "delivery")))
    run(delivery.deliver(ctx, e, Batch(1, "delivery")))  # read again: announced again, not sent again
    run(delivery.deliver(ctx, event(doc, topic="callbill.documents", offset=4), Batch(1, "delivery")))
    assert ctx.outcomes("delivery") == ["DELIVERED", "DELIVERED", "ALREADY_DELIVERED"]
    mails = mail_sink.messages()
    assert len(mails) == 1 and mails[0]["To"] == "jane@example.com"
    assert "Jane" not in mails[0]["Subject"]  # no personal data in the subject
    assert ctx.ledger.get("gen-1").state is State.DELIVERED


def test_delivery_never_resends_blindly_after_an_intent_without_an_outcome(tmp_path, mail_sink):
    ctx = make_context(tmp_path, smtp_url=f"smtp://127.0.0.1:{mail_sink.port}?starttls=off")
    doc = documented(ctx)
    # the worker died between "about to send" and the outcome
    ctx.ledger.update("gen-1", deliveryIntent={"attempt": 1, "channel": "EMAIL", "at": ENDED.isoformat()})
    run(delivery.deliver(ctx, event(doc, topic="callbill.documents", offset=3), Batch(1, "delivery")))
    assert ctx.outcomes("delivery") == ["REVIEW"]
    assert ctx.out("callbill.review")[-1]["reason"] == "DELIVERY_UNCONFIRMED"
    assert mail_sink.messages() == []


def test_delivery_reviews_a_suppressed_address_instead_of_mailing_it(tmp_path, mail_sink):
    ctx = make_context(tmp_path, smtp_url=f"smtp://127.0.0.1:{mail_sink.port}?starttls=off")
    doc = documented(ctx)
    run(bounces.handle(ctx, event(Bounce(address="jane@example.com", kind="hard", status="5.1.1",
                                         source="smtp"), topic="callbill.bounces", key="jane@example.com")))
    run(delivery.deliver(ctx, event(doc, topic="callbill.documents", offset=3), Batch(1, "delivery")))
    assert ctx.out("callbill.review")[-1]["reason"] == "PENDING_REVIEW:EMAIL_SUPPRESSED"
    assert mail_sink.messages() == []


# --- acknowledgements, bounces, retry, review ----------------------------------------

def test_an_acknowledgement_is_skipped_once_too_late_and_never_sent_for_a_delivered_invoice(tmp_path):
    ctx = make_context(tmp_path)
    now = datetime.now(timezone.utc)
    entry = LedgerEntry(state=State.RECEIVED, firstSeen=now, updatedAt=now)
    ctx.ledger.put("gen-1", entry)
    late = AckDue(interactionId="gen-1", customerId="CUST-9876543", intakeAt=now - timedelta(minutes=5),
                  dueAt=now - timedelta(minutes=4))
    run(acks.handle(ctx, event(late, topic="callbill.acks")))
    assert ctx.outcomes("ack") == ["ACK_SKIPPED"]
    ctx.ledger.put("gen-1", entry.touched(now, state=State.DELIVERED))
    run(acks.handle(ctx, event(late.model_copy(update={"intakeAt": now}), topic="callbill.acks")))
    assert ctx.outcomes("ack") == ["ACK_SKIPPED"]  # delivered: nothing to say


def test_a_soft_bounce_allows_one_more_attempt_and_a_hard_one_suppresses_and_reviews(tmp_path):
    ctx = make_context(tmp_path, soft_bounce_limit=3)
    documented(ctx)
    soft = Bounce(address="jane@example.com", kind="soft", status="4.2.2", interactionId="gen-1", source="dsn")
    run(bounces.handle(ctx, event(soft, topic="callbill.bounces", key="gen-1")))
    assert ctx.outcomes("bounces") == ["SOFT_BOUNCE"]
    assert ctx.out("callbill.retry")[-1]["topic"] == "callbill.documents"
    assert ctx.ledger.get("gen-1").deliveryAttempt == 2
    hard = soft.model_copy(update={"kind": "hard", "status": "5.1.1"})
    run(bounces.handle(ctx, event(hard, topic="callbill.bounces", key="gen-1")))
    assert ctx.outcomes("bounces")[-1] == "BOUNCED"
    assert ctx.suppressions.reason("jane@example.com")
    assert ctx.out("callbill.suppressions")[-1]["address"] == "jane@example.com"
    assert ctx.ledger.get("gen-1").state is State.REVIEW


def test_a_notification_sent_twice_is_counted_once_and_one_read_again_redoes_its_outputs(tmp_path):
    """Issue 17, point 11: a provider's retry or a replay carries the same event id."""
    ctx = make_context(tmp_path, soft_bounce_limit=3)
    documented(ctx)
    soft = Bounce(address="jane@example.com", kind="soft", status="4.2.2", interactionId="gen-1", source="ses",
                  eventId="ses:feedback-1/1")
    first = event(soft, topic="callbill.bounces", key="gen-1", offset=1)
    run(bounces.handle(ctx, first))
    run(bounces.handle(ctx, event(soft, topic="callbill.bounces", key="gen-1", offset=2)))  # sent again
    assert ctx.outcomes("bounces") == ["SOFT_BOUNCE", "REPEATED_BOUNCE"]
    assert ctx.ledger.get("gen-1").softBounces == 1 and ctx.ledger.get("gen-1").deliveryAttempt == 2
    assert len(ctx.out("callbill.retry")) == 1
    run(bounces.handle(ctx, first))  # the first message read again after a crash: its retry may be lost
    assert ctx.outcomes("bounces")[-1] == "SOFT_BOUNCE" and len(ctx.out("callbill.retry")) == 2
    assert ctx.ledger.get("gen-1").softBounces == 1 and ctx.ledger.get("gen-1").deliveryAttempt == 2
    other = soft.model_copy(update={"eventId": "ses:feedback-2/1"})  # a new soft bounce counts
    run(bounces.handle(ctx, event(other, topic="callbill.bounces", key="gen-1", offset=3)))
    assert ctx.ledger.get("gen-1").softBounces == 2


def test_retry_sends_a_due_item_back_with_its_attempt_and_refuses_other_topics(tmp_path):
    ctx = make_context(tmp_path)
    item = RetryItem(interactionId="gen-1", stage="billing", topic="callbill.billable", attempt=2,
                     notBefore=datetime.now(timezone.utc) - timedelta(seconds=1), reason="ERP_HTTP_503",
                     payload=interaction().model_dump(mode="json"))
    run(retry.handle(ctx, event(item, topic="callbill.retry")))
    back = [s for s in ctx.sent if s.topic == "callbill.billable"]
    assert len(back) == 1 and dict(back[0].headers)["callbill-attempt"] == b"2"
    from agents.routing import Poison

    with pytest.raises(Poison, match="takes no retries"):
        run(retry.handle(ctx, event(item.model_copy(update={"topic": "callbill.audit"}), topic="callbill.retry")))


def test_a_review_item_is_queued_once_and_a_resubmit_goes_back_to_its_stage(tmp_path):
    ctx = make_context(tmp_path)
    missing = interaction("gen-9", customer=None, externalContactId="c0ffee00-0000-4000-8000-00000000beef")
    item = ReviewItem(interactionId="gen-9", stage="intake", reason="MISSING_CUSTOMER",
                      interaction=missing.model_dump(mode="json"))
    run(review.record(ctx, event(item, topic="callbill.review")))
    run(review.record(ctx, event(item, topic="callbill.review")))
    assert ctx.reviews.get("gen-9").count == 2
    run(review.act(ctx, event(ReviewAction(interactionId="gen-9", action="resubmit", actor="ops"),
                              topic="callbill.review-actions")))
    back = [s.json() for s in ctx.sent if s.topic == "callbill.interactions"]
    assert back == [{**missing.model_dump(mode="json", exclude_none=True), "customerId": "CUST-5550001"}]
    assert ctx.reviews.get("gen-9").status == "RESUBMITTED"
    assert ctx.outcomes("review") == ["RESUBMITTED"]


# --- assembly -----------------------------------------------------------------------

def test_assembly_turns_a_webhook_into_one_interaction_and_ignores_a_late_repeat(tmp_path):
    ctx = make_context(tmp_path)
    body = {"interactionId": "gen-1", "customerId": "CUST-9876543", "timestamp": "2026-11-24T22:15:00Z",
            "durationSeconds": 300, "billingCode": "Billable Service"}
    e = GenesysEvent(kind="webhook", receivedAt=datetime.now(timezone.utc), payload=body)
    run(assemble.handle(ctx, event(e, topic="genesys.events", key="gen-1")))
    assert [i["interactionId"] for i in ctx.out("callbill.interactions")] == ["gen-1"]
    assert ctx.outcomes("assemble") == ["ASSEMBLED"]
    assert ctx.pending.get("gen-1").done is not None


# --- billing with the ERP, documents that cannot be rendered --------------------------

def test_an_erp_400_goes_to_review_once_and_is_not_retried(tmp_path, mail_sink):
    from devtools.reference_erp import ReferenceErp
    from pipeline import Pipeline

    erp = ReferenceErp(token="erp-token").start()
    try:
        erp.call(erp.control, knownCustomers=["CUST-9876543"])
        ctx = make_context(tmp_path, erp_url=erp.url, erp_token="erp-token",
                           smtp_url=f"smtp://127.0.0.1:{mail_sink.port}?starttls=off")

        async def go():
            async with Pipeline(ctx) as p:
                await p.send("callbill.billable", interaction("r-ok"))
                await p.send("callbill.billable", interaction("r-bad", customer="CUST-5550001"))
                await p.settle()
        run(go())
        assert erp.call(lambda: erp.requests["r-bad"]) == 1  # asked once, never again
    finally:
        erp.stop()
    assert [i["interactionId"] for i in ctx.out("callbill.invoices")] == ["r-ok"]
    # issued: the draft (kept for resending the first body) is gone from the entry
    assert ctx.ledger.get("r-ok").invoice is not None and ctx.ledger.get("r-ok").draft is None
    [r] = ctx.out("callbill.review")
    assert (r["interactionId"], r["stage"], r["reason"]) == ("r-bad", "billing", "ERP_REJECTED:UNKNOWN_CUSTOMER")
    assert "400" in r["detail"] and r["interaction"]["interactionId"] == "r-bad"
    assert ctx.out("callbill.retry") == [] and len(mail_sink.messages()) == 1


@pytest.mark.parametrize("override, named", [
    ({"invoiceNumber": "Invoice for Jane Doe\r\nBcc: x@example.com"}, "invoiceNumber"),
    ({"invoiceNumber": "../../etc/passwd"}, "invoiceNumber"),
    ({"total": "999.00"}, "total is not subtotal + taxTotal"),
    ({"total": "-1.00", "subtotal": None, "taxTotal": None}, "total"),
    ({"currency": "EUR"}, "currency: not the requested USD"),
    ({"total": "101.005", "subtotal": None, "taxTotal": None}, "total: more decimals than USD has"),
], ids=["number-with-header", "number-with-path", "does-not-add-up", "negative", "other-currency", "sub-cent"])
def test_an_erp_answer_that_is_not_a_usable_invoice_goes_to_review_not_to_the_customer(tmp_path, mail_sink,
                                                                                        override, named):
    """Issue 17, point 8: the ERP's answer is checked to its shape and against the request;
    one that fails is a review item, never a subject line or a PDF."""
    from devtools.reference_erp import ReferenceErp
    from pipeline import Pipeline

    erp = ReferenceErp(token="erp-token").start()
    try:
        erp.call(erp.control, answerOverrides={"r-odd": override})
        ctx = make_context(tmp_path, erp_url=erp.url, erp_token="erp-token",
                           smtp_url=f"smtp://127.0.0.1:{mail_sink.port}?starttls=off")

        async def go():
            async with Pipeline(ctx) as p:
                await p.send("callbill.billable", interaction("r-ok"))
                await p.send("callbill.billable", interaction("r-odd"))
                await p.settle()
        run(go())
    finally:
        erp.stop()
    assert [i["interactionId"] for i in ctx.out("callbill.invoices")] == ["r-ok"]
    assert [d["interactionId"] for d in ctx.out("callbill.documents")] == ["r-ok"]
    [r] = ctx.out("callbill.review")
    assert (r["interactionId"], r["reason"]) == ("r-odd", "ERP_INVALID_RESPONSE")
    assert named in r["detail"]
    assert "Jane" not in r["detail"] and "passwd" not in r["detail"] and "999" not in r["detail"]
    assert len(mail_sink.messages()) == 1  # r-ok's invoice only
    assert ctx.ledger.get("r-odd").invoiceNumber is None


def test_a_pdf_that_cannot_be_rendered_goes_to_review(tmp_path):
    broken = tmp_path / "logo.png"
    broken.write_bytes(b"not an image at all")
    ctx = make_context(tmp_path, seller_logo=str(broken))
    invoice = billed(ctx, "d-0")
    run(documents.document_one(ctx, event(invoice, topic="callbill.invoices", offset=1), Batch(1, "documents")))
    [r] = [r for r in ctx.out("callbill.review") if r["stage"] == "documents"]
    assert r["interactionId"] == "d-0" and r["reason"] == "RENDER_FAILED" and "rendered" in r["detail"]
    assert ctx.out("callbill.documents") == [] and ctx.out("callbill.dlq") == []
