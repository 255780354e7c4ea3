"""The bridge's contract as an OpenAPI 3.1 document, built from the models it validates with.

Generated, not hand-written, so the published schema cannot drift from what the bridge
accepts; served at GET /openapi.json and fuzzed against the running bridge by schemathesis.
"""
from __future__ import annotations

from functools import cache
from typing import Any

from schemas.genesys import EVENT_TOPIC, EventBridgeEvent, WebhookPayload

_REF = "#/components/schemas/{model}"

ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {"type": "string", "description": "What is wrong, by field and rule; never the input."},
        "fields": {"type": "array", "items": {
            "type": "object", "required": ["field", "message"],
            "properties": {"field": {"type": "string"}, "message": {"type": "string"}}}},
    },
}

ACCEPTED = {
    "type": "object",
    "required": ["accepted"],
    "properties": {"accepted": {"type": "string", "description": "The interactionId (or conversationId) written."}},
}


def _error(description: str, **extra: Any) -> dict:
    return {"description": description, "content": {"application/json": {"schema": {"$ref": _REF.format(model="Error")}}},
            **extra}


def _operation(summary: str, model: str, description: str) -> dict:
    return {
        "post": {
            "summary": summary,
            "description": description,
            "operationId": model[0].lower() + model[1:],
            "security": [{"signature": []}, {"bearer": []}],
            "requestBody": {"required": True,
                            "content": {"application/json": {"schema": {"$ref": _REF.format(model=model)}}}},
            "responses": {
                "202": {"description": "Written to Kafka (acks=all); the sender may forget the event.",
                        "content": {"application/json": {"schema": {"$ref": _REF.format(model="Accepted")}}}},
                "400": _error("The body is not UTF-8 JSON."),
                "401": _error("Missing or wrong signature or bearer token, or no secret configured."),
                "413": _error("The body is larger than CALLBILL_MAX_BODY_BYTES."),
                "415": _error("The Content-Type is not application/json."),
                "422": _error("A field is missing or breaks its rule; `fields` names each."),
                "503": _error("Kafka did not acknowledge in time: keep the event and retry.",
                              headers={"Retry-After": {"schema": {"type": "string"}, "required": True}}),
            },
        }
    }


def _schemas() -> dict[str, dict]:
    out: dict[str, dict] = {"Error": ERROR, "Accepted": ACCEPTED}
    for model in (WebhookPayload, EventBridgeEvent):
        schema = model.model_json_schema(by_alias=True, ref_template=_REF)
        out.update(schema.pop("$defs", {}))
        out[model.__name__] = schema
    # A rule the model checks after parsing, written down for the sender (ECMA regex syntax).
    out["EventBridgeDetail"]["properties"]["topicName"]["pattern"] = EVENT_TOPIC.pattern.replace("(?P<", "(?<")
    out["EventBridgeDetail"]["properties"]["eventBody"]["description"] = (
        "The Genesys detail event; a conversationId in it must equal the id in topicName.")
    return out


@cache
def document() -> dict:
    return {
        "openapi": "3.1.0",
        "info": {"title": "callbill bridge", "version": "1",
                 "description": "Genesys Cloud events in; 202 only once they are durably on Kafka."},
        "paths": {
            "/genesys/webhook": _operation(
                "A finished interaction, the guide's flat webhook payload", "WebhookPayload",
                "Sent by a Genesys Architect flow or a Data Action at the end of an interaction."),
            "/genesys/eventbridge": _operation(
                "A Genesys conversation detail event from Amazon EventBridge", "EventBridgeEvent",
                "v2.detail.events.conversation.{id}.(customer.end|user.end|acw|wrapup); the bridge "
                "assembles the interaction from them."),
        },
        "components": {
            "schemas": _schemas(),
            "securitySchemes": {
                "signature": {"type": "apiKey", "in": "header", "name": "X-Callbill-Signature",
                              "description": "sha256= and the hex HMAC-SHA256 of the raw body under the shared secret."},
                "bearer": {"type": "http", "scheme": "bearer",
                           "description": "The shared secret itself (for senders that cannot sign)."},
            },
        },
    }
