"""The intake rules, without Kafka."""
from datetime import datetime, timedelta, timezone

import pytest

from domain.intake import Outcome, decide, interaction_from_webhook, is_billable
from domain.ledger import LedgerEntry, State
from schemas.genesys import WebhookPayload

CODES = frozenset({"billable service"})
NOW = datetime(2026, 11, 25, 12, 0, tzinfo=timezone.utc)


def payload(**over):
    body = {"interactionId": "gen-1", "customerId": "CUST-1", "timestamp": "2026-12-31T23:30:00+00:00",
            "durationSeconds": 90, "billingCode": "Billable Service"}
    body.update(over)
    return WebhookPayload.model_validate(body)


def test_webhook_maps_to_canonical_interaction_with_end_time():
    i = interaction_from_webhook(payload())
    assert i.interactionId == "gen-1"
    assert i.source == "webhook"
    assert i.startedAt == datetime(2026, 12, 31, 23, 30, tzinfo=timezone.utc)
    assert i.endedAt == i.startedAt + timedelta(seconds=90)
    assert i.wrapupCode == "Billable Service"


def test_non_utc_offsets_are_kept_as_instants():
    i = interaction_from_webhook(payload(timestamp="2027-01-01T08:30:00+09:00"))
    assert i.startedAt == datetime(2026, 12, 31, 23, 30, tzinfo=timezone.utc)


@pytest.mark.parametrize("code,billable", [
    ("Billable Service", True), ("billable service", True), ("  BILLABLE SERVICE ", True),
    ("Information Only", False), ("", False),
])
def test_billable_codes_compare_case_insensitively(code, billable):
    assert is_billable(interaction_from_webhook(payload(billingCode=code)), CODES) is billable


def test_first_billable_is_forwarded_and_recorded():
    d = decide(interaction_from_webhook(payload()), None, CODES, NOW)
    assert d.outcome is Outcome.FORWARD
    assert d.entry.state is State.RECEIVED and d.entry.source is None


def test_not_billable_leaves_the_ledger_alone():
    d = decide(interaction_from_webhook(payload(billingCode="Other")), None, CODES, NOW)
    assert d.outcome is Outcome.NOT_BILLABLE and d.entry is None


@pytest.mark.parametrize("customer", [None, "", "   "])
def test_missing_customer_goes_to_review(customer):
    d = decide(interaction_from_webhook(payload(customerId=customer)), None, CODES, NOW)
    assert d.outcome is Outcome.MISSING_CUSTOMER
    assert d.entry.state is State.REVIEW and d.entry.reason == "MISSING_CUSTOMER"


def test_repeat_after_forward_is_a_counted_duplicate():
    i = interaction_from_webhook(payload())
    entry = LedgerEntry(state=State.RECEIVED, firstSeen=NOW, updatedAt=NOW, source="t/0/1")
    d1 = decide(i, entry, CODES, NOW, "t/0/2")
    d2 = decide(i, d1.entry, CODES, NOW, "t/0/3")
    assert (d1.outcome, d2.outcome) == (Outcome.DUPLICATE, Outcome.DUPLICATE)
    assert d2.entry.duplicates == 2


def test_redelivery_of_the_same_message_is_decided_again_not_taken_for_a_duplicate():
    entry = LedgerEntry(state=State.RECEIVED, firstSeen=NOW, updatedAt=NOW, source="t/0/1")
    again = decide(interaction_from_webhook(payload()), entry, CODES, NOW, "t/0/1")
    assert again.outcome is Outcome.FORWARD and again.entry.firstSeen == NOW


def test_later_stages_count_a_new_message_as_a_duplicate():
    for state in (State.BILLED, State.DOCUMENTED, State.DELIVERED):
        entry = LedgerEntry(state=state, firstSeen=NOW, updatedAt=NOW, source="t/0/1")
        assert decide(interaction_from_webhook(payload()), entry, CODES, NOW, "t/0/2").outcome is Outcome.DUPLICATE


def test_the_same_message_after_a_later_stage_took_it_is_forwarded_again_in_the_audit_only():
    """A kill after billing took the forward but before intake's audit landed (a chaos run
    found one): read again, it is neither a duplicate nor sent on a second time."""
    for state in (State.BILLED, State.DOCUMENTED, State.DELIVERED):
        entry = LedgerEntry(state=state, firstSeen=NOW, updatedAt=NOW, source="t/0/1", duplicates=0)
        d = decide(interaction_from_webhook(payload()), entry, CODES, NOW, "t/0/1")
        assert (d.outcome, d.entry, d.again) == (Outcome.FORWARD, None, True)


def test_review_then_fixed_customer_goes_through_but_repeat_without_does_not():
    review = LedgerEntry(state=State.REVIEW, firstSeen=NOW, updatedAt=NOW, reason="MISSING_CUSTOMER")
    assert decide(interaction_from_webhook(payload(customerId=None)), review, CODES, NOW).outcome is Outcome.DUPLICATE
    fixed = decide(interaction_from_webhook(payload()), review, CODES, NOW + timedelta(hours=1))
    assert fixed.outcome is Outcome.FORWARD and fixed.entry.firstSeen == NOW


def test_a_later_stages_review_is_not_reopened_by_a_repeat():
    billing_review = LedgerEntry(state=State.REVIEW, firstSeen=NOW, updatedAt=NOW, reason="UNKNOWN_CUSTOMER",
                                 source="t/0/1")
    d = decide(interaction_from_webhook(payload()), billing_review, CODES, NOW + timedelta(minutes=1), "t/0/9")
    assert d.outcome is Outcome.DUPLICATE
    # its own redelivery neither: billing already decided, intake's forward is audited again
    again = decide(interaction_from_webhook(payload()), billing_review, CODES, NOW, "t/0/1")
    assert (again.outcome, again.entry, again.again) == (Outcome.FORWARD, None, True)


def test_a_send_record_writes_back_exactly_the_keys_it_was_given():
    from domain.ledger import SendRecord

    refused = {"attempt": 2, "channel": "EMAIL", "status": "FAILED", "reason": "550", "at": "x", "bounceStatus": None}
    entry = LedgerEntry(state=State.REVIEW, firstSeen=NOW, updatedAt=NOW).touched(NOW, delivery=refused)
    assert isinstance(entry.delivery, SendRecord) and entry.delivery.bounced and entry.delivery.attempt == 2
    assert entry.model_dump(mode="json")["delivery"] == refused
    sent = {"channel": "SMS", "status": "SENT", "transport": "genesys", "providerId": "c-1"}  # Delivery fields kept
    again = LedgerEntry.model_validate(entry.touched(NOW, delivery=sent).model_dump(mode="json"))
    assert again.delivery.attempt == 1 and not again.delivery.bounced
    assert again.model_dump(mode="json")["delivery"] == sent
