"""The suppression list: normalized address -> hard bounce / complaint, on every worker.

Kept on the compacted `callbill.suppressions` topic (key: the address; a null value
lifts a suppression) and followed whole, like the directory, because delivery looks it
up by address while the pipeline is partitioned by interaction.
"""
from __future__ import annotations

from pydantic import ValidationError

from runtime.logs import get_logger
from schemas.deliveries import Suppression
from tables.compacted import CompactedView

log = get_logger("suppressions")


class Suppressions(CompactedView):
    name = "suppressions"
    topic = "callbill.suppressions"

    def __init__(self) -> None:
        super().__init__()
        self.entries: dict[str, Suppression] = {}

    def __len__(self) -> int:
        return len(self.entries)

    def apply(self, key: str, value: bytes | None) -> None:
        if value is None:
            self.entries.pop(key, None)
            return
        try:
            self.entries[key] = Suppression.model_validate_json(value)
        except ValidationError:
            log.warning("unreadable suppression record skipped", extra={"stage": "suppressions"})

    def reason(self, key: str) -> str | None:
        s = self.entries.get(key)
        if s is None:
            return None
        return f"{s.reason}{' ' + s.status if s.status else ''} since {s.time:%Y-%m-%d}"
