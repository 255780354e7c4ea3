"""The gap-free number series callbill keeps for its invoices and credit notes (domain/numbering.py).

Shared by the billing and credits stages: the counter and the claims live in the ledger
table, on the changelog partition of the message being handled, beside the entries they number.
"""
from __future__ import annotations

from agents.context import Context
from domain.numbering import claim_key, counter_key, invoice_number, seq_of, series
from runtime.logs import get_logger
from schemas.invoices import Invoice

log = get_logger("billing")


def number_locally(ctx: Context, partition: int, record: str, prefix: str | None = None) -> tuple[str, str]:
    """The next number of this partition's series (invoices, or `prefix`'s: credit notes)
    for `record`; the counter moves after the entry. A number another record has claimed is
    skipped (the counter was behind), and is logged: it should never happen."""
    s = local_series(ctx, partition, prefix)
    counter = ctx.ledger.table.get(counter_key(s)) or {"seq": 0}
    seq = int(counter["seq"]) + 1
    while (owner := ctx.ledger.table.get(claim_key(invoice_number(s, seq)))) and owner.get("id") != record:
        log.error("series counter behind its numbers; skipping a claimed number",
                  extra={"stage": "billing", "reason": f"{s} counter {counter['seq']}, {invoice_number(s, seq)} claimed"})
        seq += 1
    return invoice_number(s, seq), s


def claim(ctx: Context, number: str, record: str) -> None:
    """Written before the entry: this number belongs to `record` (see domain/numbering.py)."""
    ctx.ledger.table[claim_key(number)] = {"id": record}


def catch_up_counter(ctx: Context, invoice: Invoice) -> None:
    """After a crash the entry may have landed without its counter write: move it on."""
    if invoice.issuer != "callbill" or invoice.series == "ERP":
        return
    seq = seq_of(invoice.invoiceNumber, invoice.series)
    if seq is not None:
        _move_counter(ctx, invoice.series, seq)


def catch_up(ctx: Context, number: str | None, series_: str, record: str) -> None:
    """An issued entry read again: its number is `record`'s, whatever survived of the numbering.

    After a kill -9 the entry may be all that is left of it: billing's claim, entry and counter
    writes were lost while the invoice had already been published, and documents wrote the
    entry afresh from that invoice (tests/integration/test_billing.py, docs/architecture.md). The
    number is claimed for `record` if nobody has it, and the counter moves past it."""
    if not number or (seq := seq_of(number, series_)) is None:
        return  # the ERP's number, or another series'
    table = ctx.ledger.table
    owner = table.get(claim_key(number))
    if owner is None:
        table[claim_key(number)] = {"id": record}
    elif owner.get("id") != record:
        log.error("an issued number is claimed by another record",
                  extra={"stage": "billing", "reason": f"{number} claimed by another record"})
    _move_counter(ctx, series_, seq)


def _move_counter(ctx: Context, series_: str, seq: int) -> None:
    key = counter_key(series_)
    current = ctx.ledger.table.get(key) or {"seq": 0}
    if int(current["seq"]) < seq:
        ctx.ledger.table[key] = {"seq": seq}


def local_series(ctx: Context, partition: int, prefix: str | None = None) -> str:
    """This partition's series of callbill's own numbers (invoices, or `prefix`'s)."""
    return series(prefix or ctx.settings.invoice_prefix, partition, ctx.settings.topic_partitions)
