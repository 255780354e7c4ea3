"""Liveness, readiness and Prometheus metrics."""
from __future__ import annotations

from faust.web import Request, Response, View
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from app.web.bridge import producer
from app.main import app
from runtime.metrics import REGISTRY, refresh_lag


def worker_ready() -> bool:
    """Partitions assigned and tables recovered: the agents are consuming."""
    try:
        recovered = app.tables.recovery.completed.is_set()
        assigned = bool(app.consumer.assignment())
    except Exception:  # noqa: BLE001 - not started yet
        return False
    from tables.directory import directory

    return recovered and assigned and not app.rebalancing and directory.caught_up.is_set()


@app.page("/health")
class Health(View):
    async def get(self, request: Request) -> Response:
        kafka = await producer.broker_reachable()
        ready = kafka and worker_ready()
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
