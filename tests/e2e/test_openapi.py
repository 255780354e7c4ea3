"""The bridge's published OpenAPI document, and schemathesis run from it against the running bridge."""
from __future__ import annotations

import json

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, reject, seed, settings
from schemathesis import GenerationMode
from schemathesis.core.parameters import ParameterLocation
from schemathesis.checks import (
    content_type_conformance,
    negative_data_rejection,
    not_a_server_error,
    positive_data_acceptance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from app.web.openapi import document
from kafka_harness import SECRET, read_topic, sign

pytestmark = pytest.mark.kafka

EXAMPLES = 300  # per operation and mode: 1,200 requests, on top of test_hostile_input's 10,000
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_headers_conformance,
          response_schema_conformance, positive_data_acceptance, negative_data_rejection]


def as_bytes(body) -> bytes:
    if isinstance(body, bytes):
        return body
    if isinstance(body, str):
        return body.encode()
    if isinstance(body, (dict, list, int, float, bool)) or body is None:
        return json.dumps(body).encode()
    return b""  # no body at all


def breaks_a_header(case) -> bool:
    data = getattr(getattr(case.meta, "phase", None), "data", None)
    return getattr(data, "parameter_location", None) == ParameterLocation.HEADER


def test_the_bridge_serves_the_document_and_it_loads():
    schema = schemathesis.openapi.from_dict(document())
    labels = sorted(r.ok().label for r in schema.get_all_operations())
    assert labels == ["POST /genesys/eventbridge", "POST /genesys/webhook"]


def test_schemathesis_against_the_running_bridge(worker, kafka_bootstrap):
    served = httpx.get(worker.url + "/openapi.json", timeout=10)
    assert served.status_code == 200 and served.json() == document()
    schema = schemathesis.openapi.from_url(worker.url + "/openapi.json")
    accepted: list[str] = []
    counts = {"positive": 0, "negative": 0, "auth broken": 0}
    with httpx.Client(base_url=worker.url, timeout=30) as client:
        for result in schema.get_all_operations():
            op = result.ok()
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                @seed(20261202)
                @settings(max_examples=EXAMPLES, deadline=None, database=None,
                          suppress_health_check=list(HealthCheck))
                @given(case=op.as_strategy(generation_mode=mode))
                def run(case) -> None:
                    body = as_bytes(case.body)
                    headers = {"Content-Type": case.media_type or "application/json"}
                    if breaks_a_header(case):
                        headers.update(case.headers or {})  # the mutated auth header, sent as generated
                    else:  # signed like a real sender
                        headers["X-Callbill-Signature"] = sign(body, SECRET)
                    try:
                        request = client.build_request("POST", case.formatted_path, content=body, headers=headers)
                    except (UnicodeEncodeError, ValueError, TypeError):
                        reject()  # not a header value HTTP can carry
                    r = client.send(request)
                    case.validate_response(r, checks=CHECKS)
                    counts[mode.value] += 1
                    if breaks_a_header(case):
                        counts["auth broken"] += 1
                        assert r.status_code == 401, (r.status_code, r.text[:200])
                    if r.status_code == 202:
                        accepted.append(r.json()["accepted"])

                run()
    print("schemathesis:", counts, "accepted:", len(accepted))
    assert counts["positive"] >= EXAMPLES and counts["negative"] >= EXAMPLES // 2 and counts["auth broken"], counts
    assert accepted, counts
    # nothing half-written: exactly the accepted requests are on the topic
    events = read_topic(kafka_bootstrap, worker.topic("genesys.events"), until=lambda m: len(m) >= len(accepted),
                        timeout=60)
    assert len(events) == len(accepted)
    assert worker.proc.poll() is None
