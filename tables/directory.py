"""The customer directory, whole on every worker, from the compacted `crm.customers` topic.

Assembly looks customers up by Genesys external contact id, a key the pipeline is not
partitioned by, so every worker follows the whole topic (tables/compacted.py).
"""
from __future__ import annotations

from pydantic import ValidationError

from runtime.logs import get_logger
from schemas.customers import Customer
from schemas.errors import summary
from tables.compacted import CompactedView

log = get_logger("directory")


class Directory(CompactedView):
    name = "directory"
    topic = "crm.customers"

    def __init__(self) -> None:
        super().__init__()
        self.customers: dict[str, Customer] = {}
        self.by_contact: dict[str, str] = {}
        self.invalid: dict[str, str] = {}  # customerId -> why its latest record is refused (fields, no values)

    def __len__(self) -> int:
        return len(self.customers)

    def apply(self, key: str, value: bytes | None) -> None:
        old = self.customers.pop(key, None)
        if old:
            for cid in old.externalContactIds:
                if self.by_contact.get(cid) == key:
                    del self.by_contact[cid]
        self.invalid.pop(key, None)
        if value is None:
            return
        try:
            customer = Customer.model_validate_json(value)
        except ValidationError as e:
            # never used for an invoice; the customers stage dead-letters it once
            self.invalid[key] = summary(e)[:500]
            log.warning("invalid directory record left out", extra={"stage": "directory"})
            return
        if customer.customerId != key:
            self.invalid[key] = "customerId: not the record's key"
            log.warning("invalid directory record left out", extra={"stage": "directory"})
            return
        self.customers[key] = customer
        for cid in customer.externalContactIds:
            self.by_contact[cid] = key

    def customer_for_contacts(self, contact_ids: list[str]) -> str | None:
        for cid in contact_ids:
            if cid in self.by_contact:
                return self.by_contact[cid]
        return None
