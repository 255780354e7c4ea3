"""Fixes for a message-loss race in faust-streaming 0.15.3's end of recovery.

Found with tests/integration/test_billing.py (a worker killed, a new one started): in about one run
in five the new worker silently lost the first messages of its partitions and then sat
idle, caught up. Cause (traced with asyncio task dumps and fetch logs):

1. After a crash there is changelog data to restore, so recovery starts the fetcher and
   turns the flow on before restoring (faust/tables/recovery.py, ~447-453).
2. `on_recovery_completed` resumes the stream partitions while that fetcher runs, so
   records are fetched into the agents' queues during the seek to committed offsets, and
   `flow_control.resume()` then clears those queues (mode/utils/queues.py): the records
   are dropped, and the consumer's position is already past them.
3. The seek cannot rewind partitions with no committed offset yet (a worker killed before
   its first commit): aiokafka's `seek_to_committed` skips them.

The fixes: keep the flow stopped until the seek and the queue clear are done, and rewind
never-committed partitions to the beginning (what `consumer_auto_offset_reset="earliest"`
means). `apply()` is called by the app factory (app/factory.py) before the app is built.
"""
from __future__ import annotations

from faust.tables.recovery import Recovery
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

_on_recovery_completed = Recovery.on_recovery_completed
_seek_to_committed = AIOKafkaConsumerThread.seek_to_committed


async def on_recovery_completed(self, generation_id: int = 0) -> None:  # type: ignore[no-untyped-def]
    self.app.consumer.stop_flow()
    self.app.flow_control.suspend()
    await _on_recovery_completed(self, generation_id)  # seeks, clears the queues, resumes the flow


async def seek_to_committed(self):  # type: ignore[no-untyped-def]
    committed = await _seek_to_committed(self)
    never = [tp for tp, offset in committed.items() if not offset]
    if never:
        await self.call_thread(self._ensure_consumer().seek_to_beginning, *never)
    return committed


def apply() -> None:
    """Patch faust-streaming (idempotent): called when the app is built, never at import."""
    Recovery.on_recovery_completed = on_recovery_completed  # type: ignore[method-assign]
    AIOKafkaConsumerThread.seek_to_committed = seek_to_committed  # type: ignore[method-assign]
