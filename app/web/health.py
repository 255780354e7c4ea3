"""Liveness, readiness and Prometheus metrics."""
from __future__ import annotations

from faust.web import Request, Response, View
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from typing import Any

from agents.context import Context
from app.web.bridge import EventProducer
from runtime.metrics import REGISTRY, refresh_lag


def worker_ready(app: Any, ctx: Context) -> bool:
    """Partitions assigned and tables recovered: the agents are consuming."""
    try:
        recovered = app.tables.recovery.completed.is_set()
        assigned = bool(app.consumer.assignment())
    except Exception:  # noqa: BLE001 - not started yet
        return False
    return recovered and assigned and not app.rebalancing and ctx.directory.caught_up.is_set()


def register(app: Any, ctx: Context, producer: EventProducer) -> None:
    @app.page("/health")
    class Health(View):
        async def get(self, request: Request) -> Response:
            kafka = await producer.broker_reachable()
            ready = kafka and worker_ready(app, ctx)
            body = {"status": "ok" if ready else "unavailable", "kafka": "up" if kafka else "down", "ready": ready}
            return self.json(body, status=200 if ready else 503)

    @app.page("/health/live")
    class Live(View):
        async def get(self, request: Request) -> Response:
            return self.json({"status": "alive"})

    @app.page("/metrics")
    class Metrics(View):
        async def get(self, request: Request) -> Response:
            refresh_lag(app)
            return self.bytes(generate_latest(REGISTRY), content_type=CONTENT_TYPE_LATEST.split(";")[0])
