"""Invoice numbers when callbill issues them (no ERP): one gap-free series per partition.

Every interaction is keyed by interactionId, so it is always billed on the same
partition, by one worker at a time. Each partition owns a series (`INV03` for partition
3) and a counter kept in the ledger table beside the entries it numbers, in the same
changelog partition. The number is written into the interaction's ledger entry before
the counter moves, so after a crash either both survived, or only the entry did (the
redelivered interaction keeps its number and the counter catches up), or neither did
(the interaction is numbered again with the same number). Numbers are assigned only when
the invoice is issued, after every check passed, so retries, duplicates and review cases
never consume one. EU invoicing rules allow "one or more series".

The invoice can reach its topic before these writes reach the changelog. After a kill,
the entry may then come back only from a later stage that read the invoice; billing reading
the interaction again keeps that number, claims it and moves the counter past it
(agents/series.py `catch_up`, docs/architecture.md).

Each number is also claimed (`#number:<number>` -> the interaction), written before the
entry. Numbering skips a number claimed by another interaction, so even a counter that
comes back behind its entries never gives one number to two invoices; and the claims let an
operator's credit request find an invoice's interaction from its number.
"""
from __future__ import annotations


def series(prefix: str, partition: int, partitions: int) -> str:
    width = max(2, len(str(max(partitions - 1, 0))))
    return f"{prefix}{partition:0{width}d}"


def invoice_number(series_: str, seq: int) -> str:
    return f"{series_}-{seq:06d}"


def seq_of(number: str, series_: str) -> int | None:
    """The sequence number of `number` if it belongs to `series_`."""
    head, _, tail = number.rpartition("-")
    return int(tail) if head == series_ and tail.isdigit() else None


def counter_key(series_: str) -> str:
    """The ledger-table key of a series' counter ('#' cannot start a Genesys id)."""
    return f"#series:{series_}"


def claim_key(number: str) -> str:
    """The ledger-table key that says which interaction a number was given to."""
    return f"#number:{number}"
