"""The ledger's typed access: entries it wrote are handed out parsed, and only while the table
still holds what was written; the large parts are dumped once; a read always equals the table."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest
from pydantic import ValidationError

from domain.billing import draft, issue
from domain.ledger import LedgerEntry, State
from tables.ledger import WRITTEN_WHEN_SET, Ledger
from test_domain_billing import CARD, customer, interaction

NOW = datetime(2027, 1, 1, 5, 0, tzinfo=timezone.utc)


def billed(iid: str = "i-1") -> LedgerEntry:
    inv = issue(draft(interaction(), customer(), CARD, None), "INV03-000042", "INV03", NOW)
    return LedgerEntry(state=State.BILLED, firstSeen=NOW, updatedAt=NOW, source="t/0/1",
                       invoiceNumber=inv.invoiceNumber, invoice=inv, billingSource="t/0/1")


def written(entry: LedgerEntry) -> dict:
    """What a plain dump writes: the entry's JSON, without the later fields it never set."""
    value = entry.model_dump(mode="json")
    return {k: v for k, v in value.items() if k not in WRITTEN_WHEN_SET or v}


def fresh(table: dict, iid: str) -> LedgerEntry:
    return LedgerEntry.model_validate(table[iid])


def test_a_written_entry_is_read_back_parsed_and_equal_to_the_table():
    table: dict = {}
    ledger = Ledger(table, clock=lambda: NOW)
    entry = billed()
    ledger.put("i-1", entry)
    assert ledger.get("i-1") is entry
    assert ledger.get("i-1") == fresh(table, "i-1")
    assert table["i-1"] == written(entry)
    assert "credits" not in table["i-1"]


def test_a_value_installed_by_someone_else_is_validated_afresh():
    """A changelog recovery (or a RocksDB read) puts another object in the table: never the cached entry."""
    table: dict = {}
    ledger = Ledger(table, clock=lambda: NOW)
    ledger.put("i-1", billed())
    replaced = dict(table["i-1"], state="DELIVERED")
    table["i-1"] = replaced
    got = ledger.get("i-1")
    assert got.state is State.DELIVERED and got == LedgerEntry.model_validate(replaced)
    del table["i-1"]
    assert ledger.get("i-1") is None


def test_later_writes_reuse_the_invoice_json_and_stay_exact():
    table: dict = {}
    ledger = Ledger(table, clock=lambda: NOW)
    ledger.put("i-1", billed())
    first = table["i-1"]
    updated = ledger.update("i-1", state=State.DOCUMENTED, documentKey="invoices/2027/01/INV03-000042.pdf")
    second = table["i-1"]
    assert second is not first and second["invoice"] is first["invoice"]  # dumped once
    assert second == written(updated)  # and the whole value is what a dump gives
    assert list(second) == [k for k in LedgerEntry.model_fields if k in second]  # in field order
    assert fresh(table, "i-1") == updated == ledger.get("i-1")
    # a new invoice object (a re-bill in a test, a credit) is dumped again
    other = billed().invoice.model_copy(update={"invoiceNumber": "INV03-000043"})
    ledger.update("i-1", invoice=other)
    assert table["i-1"]["invoice"]["invoiceNumber"] == "INV03-000043"


def test_entries_are_frozen_and_the_kept_ones_bounded():
    entry = billed()
    with pytest.raises(ValidationError):
        entry.state = State.REVIEW
    table: dict = {}
    ledger = Ledger(table, clock=lambda: NOW)
    for i in range(Ledger.KEEP + 10):
        ledger.put(f"i-{i}", entry)
    assert len(ledger._parsed) == Ledger.KEEP
    assert ledger.get("i-0") == entry and ledger.get("i-0") is not entry  # no longer kept: parsed from the table
    assert ledger.get(f"i-{Ledger.KEEP + 9}") is entry


def test_an_equal_value_decoded_afresh_is_the_kept_entry():
    """A RocksDB store decodes a new dict at every read: equal to what was written, it is the
    kept entry (not validated again); one changed field anywhere makes it a fresh parse."""
    import copy
    import json

    table: dict = {}
    ledger = Ledger(table, clock=lambda: NOW)
    entry = billed()
    ledger.put("i-1", entry)
    table["i-1"] = json.loads(json.dumps(table["i-1"]))  # what a store's decode gives
    assert ledger.get("i-1") is entry
    changed = copy.deepcopy(table["i-1"])
    changed["invoice"]["notes"] = ["changed by another writer"]
    table["i-1"] = changed
    got = ledger.get("i-1")
    assert got is not entry and got.invoice.notes == ["changed by another writer"]
