"""Prometheus metrics: counts and latencies, labelled by stage and outcome, never by person."""
from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

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
STAGE_IN = Counter(
    "callbill_stage_events_in_total", "Messages taken by each stage", ["stage"], registry=REGISTRY,
)
TOPIC_OUT = Counter(
    "callbill_topic_events_out_total", "Messages written by the stages, per topic", ["topic"], registry=REGISTRY,
)
END_TO_END = Histogram(
    "callbill_end_to_end_seconds", "From the end of the call to the invoice handed to the customer's channel",
    registry=REGISTRY, buckets=(0.5, 1, 2, 3, 5, 10, 20, 30, 60, 120, 300, 900, 3600),
)
CONSUMER_LAG = Gauge(
    "callbill_consumer_lag", "Messages not yet read, per topic, on this worker's partitions", ["topic"],
    registry=REGISTRY,
)
RETRY_DEPTH = Gauge(
    "callbill_retry_depth", "Parked items on callbill.retry not yet sent back (this worker's partitions)",
    registry=REGISTRY,
)
# (topic, partition) -> the first callbill.retry offset not yet sent back, as the retry agent
# knows it: Faust counts an item as read while it still waits for its time in the agent
RETRY_POSITION: dict[tuple[str, int], int] = {}


def note_retry_position(topic: str, partition: int, offset: int) -> None:
    """Everything below `offset` on this partition has been sent back (items go in order)."""
    key = (topic, partition)
    RETRY_POSITION[key] = max(RETRY_POSITION.get(key, 0), offset)


def refresh_lag(app) -> None:
    """Consumer lag per topic (high water mark minus the next offset to read), at scrape time."""
    try:
        consumer = app.consumer
        assignment = consumer.assignment()
    except Exception:  # noqa: BLE001 - not started yet: nothing to report
        return
    lag: dict[str, int] = {}
    depth = 0
    for tp in assignment:
        try:
            high = consumer.highwater(tp)
        except Exception:  # noqa: BLE001 - partition not fetched yet
            continue
        if high is None:
            continue
        read = consumer._read_offset.get(tp)
        position = read + 1 if read is not None else 0
        behind = max(0, high - position)
        lag[tp.topic] = lag.get(tp.topic, 0) + behind
        if tp.topic.endswith("callbill.retry"):
            depth += max(0, high - RETRY_POSITION.get((tp.topic, tp.partition), position))
    for topic, n in lag.items():
        CONSUMER_LAG.labels(topic).set(n)
    RETRY_DEPTH.set(depth)
