"""Prometheus metrics: counts and latencies, labelled by stage and outcome, never by person."""
from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

STAGE_OUTCOMES = Counter(
    "callbill_stage_outcomes_total", "Messages handled per stage and outcome", ["stage", "outcome"], registry=REGISTRY
)
BRIDGE_REQUESTS = Counter(
    "callbill_bridge_requests_total", "Bridge requests by endpoint and status", ["endpoint", "status"], registry=REGISTRY
)
BRIDGE_LATENCY = Histogram(
    "callbill_bridge_seconds", "Bridge request time, accept to Kafka ack", ["endpoint"], registry=REGISTRY,
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
STAGE_LATENCY = Histogram(
    "callbill_stage_seconds", "Time to handle one message per stage", ["stage"], registry=REGISTRY,
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
EXTERNAL_ERRORS = Counter(
    "callbill_external_errors_total", "Failed calls to outside systems by system and kind", ["system", "kind"],
    registry=REGISTRY,
)
EXTERNAL_LATENCY = Histogram(
    "callbill_external_seconds", "Time of calls to outside systems", ["system"], registry=REGISTRY,
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
RETRY_PARKED = Counter(
    "callbill_retry_parked_total", "Items parked on callbill.retry by stage", ["stage"], registry=REGISTRY,
)
