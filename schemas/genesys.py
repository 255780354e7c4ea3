"""What Genesys Cloud (or the guide's webhook) sends to the bridge.

Strict types: a mistyped field is refused at the bridge with its name, rather than
coerced into something nobody sent.
"""
from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from annotated_types import MaxLen
from pydantic import (
    AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field, StrictInt, StrictStr, ValidationInfo, field_validator,
    model_validator,
)


def _integral(v: Any) -> Any:
    return int(v) if isinstance(v, float) and v.is_integer() else v


# JSON has one number type: 60.0 is the integer 60 (as JSON Schema says), "60" is not.
JsonInt = Annotated[StrictInt, BeforeValidator(_integral)]


def _text_time(value: Any) -> Any:
    """ISO 8601 text, as the published schema says; a number would be read as Unix seconds."""
    if not isinstance(value, str):
        raise ValueError("a date-time string with an offset, like 2026-11-24T22:15:00Z")
    return value

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:\-]{0,127}$"
EVENT_TOPIC = re.compile(
    r"^v2\.detail\.events\.conversation\.(?P<id>[A-Za-z0-9._\-]{1,128})\.(?P<kind>customer\.end|user\.end|acw|wrapup)$"
)


class WebhookPayload(BaseModel):
    """The guide's flat payload (section 1, 'Payload Structure for External Trigger')."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    interactionId: StrictStr = Field(pattern=ID_PATTERN)
    # null, empty or absent are all accepted here: intake routes them to review
    # (the guide's first trap), it must not be a 4xx that the sender drops.
    customerId: StrictStr | None = Field(None, max_length=128)
    timestamp: Annotated[AwareDatetime, BeforeValidator(_text_time)]
    durationSeconds: JsonInt = Field(ge=0, le=7 * 24 * 3600)
    agentName: StrictStr | None = Field(None, max_length=256)
    serviceType: StrictStr | None = Field(None, max_length=256)
    billingCode: StrictStr = Field(max_length=256)

    @field_validator("*", mode="before")
    @classmethod
    def _as_sent(cls, value: Any, info: ValidationInfo) -> Any:
        """maxLength and pattern hold for the text as sent, as the published schema says:
        whitespace is stripped first otherwise, and a value padded with newlines or a
        vertical tab got in (found by tests/e2e/test_openapi.py)."""
        if isinstance(value, str) and info.field_name:
            metadata = cls.model_fields[info.field_name].metadata
            limit = next((m.max_length for m in metadata if isinstance(m, MaxLen)), None)
            if limit is not None and len(value) > limit:
                raise ValueError(f"longer than {limit} characters")
            pattern = next((p for m in metadata if (p := getattr(m, "pattern", None))), None)
            if pattern is not None and not re.fullmatch(pattern, value):
                raise ValueError(f"does not match {pattern}")
        return value


class EventBridgeDetail(BaseModel):
    model_config = ConfigDict(extra="allow")

    topicName: StrictStr = Field(json_schema_extra={"pattern": EVENT_TOPIC.pattern})  # checked below, by name
    version: StrictStr | None = None
    eventBody: dict[str, Any]
    metadata: dict[str, Any] | None = None
    timestamp: StrictStr | None = None


class EventBridgeEvent(BaseModel):
    """An Amazon EventBridge event carrying a Genesys conversation detail event."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    detail_type: StrictStr | None = Field(None, alias="detail-type")
    source: StrictStr | None = None
    detail: EventBridgeDetail

    @model_validator(mode="after")
    def _topic_names_conversation(self) -> "EventBridgeEvent":
        m = EVENT_TOPIC.match(self.detail.topicName)
        if not m:
            raise ValueError(
                "detail.topicName must be v2.detail.events.conversation.{id}."
                "(customer.end|user.end|acw|wrapup)"
            )
        body_id = self.detail.eventBody.get("conversationId")
        if body_id is not None and body_id != m["id"]:
            raise ValueError("detail.eventBody.conversationId does not match the id in detail.topicName")
        return self

    @property
    def conversation_id(self) -> str:
        return EVENT_TOPIC.match(self.detail.topicName)["id"]  # type: ignore[index]

    @property
    def event_kind(self) -> str:
        return EVENT_TOPIC.match(self.detail.topicName)["kind"]  # type: ignore[index]


class DetailEventBody(BaseModel):
    """The body of a v2.detail.events.conversation.{id}.* event: every field is optional.

    Only what billing needs is kept; wrap-up notes (free text, may hold personal data)
    are not read at all.
    """

    model_config = ConfigDict(extra="ignore")

    eventTime: int | None = None  # epoch ms
    conversationId: str | None = None
    participantId: str | None = None
    sessionId: str | None = None
    mediaType: str | None = None
    direction: str | None = None
    disconnectType: str | None = None
    externalContactId: str | None = None
    conversationExternalContactIds: list[str] | None = None
    userId: str | None = None
    queueId: str | None = None
    interactingDurationMs: int | None = None
    heldDurationMs: int | None = None
    wrapupCode: str | None = None
    wrapupDurationMs: int | None = None


class GenesysEvent(BaseModel):
    """The value on `genesys.events`: what the bridge accepted, as it accepted it.

    `backfill` carries an Analytics conversation (from `callbill backfill` or the
    reconciler); `expire` is the assembler's own reminder that a conversation waited
    too long. Neither is accepted from outside.
    """

    kind: Literal["webhook", "eventbridge", "backfill", "expire"]
    receivedAt: AwareDatetime
    payload: dict[str, Any]


class WebhookRecord(BaseModel):
    """A webhook on `genesys.events` as a producer other than the bridge writes it (key: the
    interactionId). The published schema of the topic (`callbill schemas`) is this or
    EventBridgeRecord; `backfill` and `expire` are callbill's own."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "kind": "webhook", "receivedAt": "2026-11-24T22:15:01Z",
        "payload": {"interactionId": "gen-100000001", "customerId": "CUST-9876543",
                    "timestamp": "2026-11-24T22:15:00Z", "durationSeconds": 754, "agentName": "Alex Agent",
                    "serviceType": "Consultation Service - Level 2", "billingCode": "Billable Service"}}]})

    kind: Literal["webhook"]
    receivedAt: AwareDatetime
    payload: WebhookPayload


class EventBridgeRecord(BaseModel):
    """An EventBridge detail event on `genesys.events` (key: the conversation id of its topicName)."""

    kind: Literal["eventbridge"]
    receivedAt: AwareDatetime
    payload: EventBridgeEvent


ProducedGenesysEvent = Annotated[WebhookRecord | EventBridgeRecord, Field(discriminator="kind")]
