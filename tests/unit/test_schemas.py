"""What the bridge accepts and refuses, as models."""
import pytest
from pydantic import ValidationError

from schemas.errors import field_errors
from schemas.genesys import EventBridgeEvent, WebhookPayload

GOOD = {"interactionId": "gen-123456789", "customerId": "CUST-9876543", "timestamp": "2026-11-24T22:15:00Z",
        "durationSeconds": 754, "agentName": "A", "serviceType": "S", "billingCode": "Billable Service"}


def fields_of(model, body):
    with pytest.raises(ValidationError) as e:
        model.model_validate(body)
    return {f["field"] for f in field_errors(e.value)}


def test_guide_payload_is_accepted():
    assert WebhookPayload.model_validate(GOOD).durationSeconds == 754


def test_an_integral_json_number_is_an_integer():
    # JSON Schema's "integer" (the published OpenAPI document) includes 754.0; schemathesis found the gap
    got = WebhookPayload.model_validate({**GOOD, "durationSeconds": 754.0})
    assert got.durationSeconds == 754 and type(got.durationSeconds) is int


@pytest.mark.parametrize("field,value", [
    ("durationSeconds", "754"), ("durationSeconds", 75.4), ("durationSeconds", True), ("durationSeconds", -1),
    ("durationSeconds", float("inf")), ("durationSeconds", 1e300), ("durationSeconds", "754.0"),
    ("timestamp", "2026-11-24T22:15:00"), ("timestamp", "yesterday"), ("interactionId", 123),
    ("interactionId", ""), ("interactionId", "has space"), ("billingCode", None), ("customerId", 42),
])
def test_mistyped_fields_are_named(field, value):
    assert field in fields_of(WebhookPayload, {**GOOD, field: value})


@pytest.mark.parametrize("field", ["interactionId", "timestamp", "durationSeconds", "billingCode"])
def test_missing_required_fields_are_named(field):
    body = dict(GOOD)
    del body[field]
    assert field in fields_of(WebhookPayload, body)


def test_errors_never_echo_the_input():
    secret = "4111 1111 1111 1111 Jane Doe"
    with pytest.raises(ValidationError) as e:
        WebhookPayload.model_validate({**GOOD, "durationSeconds": secret, "interactionId": secret})
    assert "4111" not in str(field_errors(e.value))


def ev(topic, body):
    return {"detail-type": "x", "source": "aws.partner/genesys.com/cloud/o/x",
            "detail": {"topicName": topic, "eventBody": body}}


def test_eventbridge_conversation_id_comes_from_the_topic():
    e = EventBridgeEvent.model_validate(ev("v2.detail.events.conversation.abc-1.acw", {"wrapupCode": "w"}))
    assert (e.conversation_id, e.event_kind) == ("abc-1", "acw")


@pytest.mark.parametrize("topic,body", [
    ("v2.users.abc.presence", {}),
    ("v2.detail.events.conversation.abc-1.customer.end", {"conversationId": "other"}),
])
def test_eventbridge_other_topics_or_mismatched_ids_are_refused(topic, body):
    with pytest.raises(ValidationError):
        EventBridgeEvent.model_validate(ev(topic, body))


def test_a_webhook_value_is_as_long_as_sent_before_whitespace_is_stripped():
    """The published schema's maxLength is for the text as sent (schemathesis found one padded
    with newlines accepted); shorter values are still stripped."""
    import pydantic

    from schemas.genesys import WebhookPayload

    base = {"interactionId": "z", "timestamp": "2026-11-24T22:15:00Z", "durationSeconds": 5, "billingCode": "x"}
    assert WebhookPayload.model_validate({**base, "agentName": "  Alex  "}).agentName == "Alex"
    with pytest.raises(pydantic.ValidationError, match="agentName\n  Value error, longer than 256 characters"):
        WebhookPayload.model_validate({**base, "agentName": "a" + "\n" * 300})
    with pytest.raises(pydantic.ValidationError, match="interactionId\n  Value error, does not match"):
        WebhookPayload.model_validate({**base, "interactionId": "\x0b8"})  # a vertical tab, then a valid id
