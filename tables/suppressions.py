"""The suppression list: normalized address -> hard bounce / complaint, on every worker.

Kept on the compacted `callbill.suppressions` topic (key: the address; a null value
lifts a suppression) and followed whole, like the directory, because delivery looks it
up by address while the pipeline is partitioned by interaction.
"""
from __future__ import annotations

from schemas.deliveries import Suppression
from tables.compacted import ModelView


class Suppressions(ModelView):
    name = "suppressions"
    topic = "callbill.suppressions"
    model = Suppression
    entries: dict[str, Suppression]

    def reason(self, key: str) -> str | None:
        s = self.entries.get(key)
        if s is None:
            return None
        return f"{s.reason}{' ' + s.status if s.status else ''} since {s.time:%Y-%m-%d}"
