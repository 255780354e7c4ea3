"""Stop the worker when Kafka drops a write, before it can commit past it.

Table changelog writes and unawaited outputs are sent in the background. If the broker
stays away longer than the producer's request timeout, aiokafka gives up on them; the
consumer could then still commit the offsets of the messages that made them (it flushes,
but a flush does not report failures). So the first failed send turns commits off and
stops the worker: the next one resumes from the last good commit, and the ledger and the
idempotency keys make the repeats harmless. Losing a write is never silent.
"""
from __future__ import annotations

import asyncio
from typing import Any

import faust

from runtime.logs import get_logger

log = get_logger("sensors")


async def _no_commit(*args: Any, **kwargs: Any) -> bool:
    return False


def disable_commits(app: faust.App) -> None:
    consumer = app._consumer
    if consumer is not None:
        consumer.commit = _no_commit  # type: ignore[method-assign]
        consumer._commit = _no_commit  # type: ignore[method-assign]


class SendGuard(faust.Sensor):
    def __init__(self, app: faust.App) -> None:
        super().__init__()
        self.app = app
        self.tripped = False

    def on_send_error(self, producer: Any, exc: BaseException, state: Any) -> None:
        log.error("kafka dropped a write; stopping without committing",
                  extra={"stage": "worker", "reason": type(exc).__name__})
        if self.tripped:
            return
        self.tripped = True
        disable_commits(self.app)
        asyncio.ensure_future(self.app.crash(exc))
