"""crm.customers, read once by the consumer group: a record the model refuses is dead-lettered.

Every worker follows the whole topic for its directory (tables/directory.py) and leaves out
a record it cannot use, so nothing is ever invoiced from one. A CRM sync or a kcat line can
write the topic directly, past the importer's checks; this stage makes each refusal visible
once, on callbill.dlq with the fields named (never their values), instead of once per
worker in a log.
"""
from __future__ import annotations

import faust

from agents.context import Context
from agents.routing import Poison, guarded, parse
from schemas.customers import Customer

STAGE = "customers"


async def handle(ctx: Context, event: faust.EventT) -> None:
    if event.message.value is None:
        return  # a tombstone: the customer is deleted
    customer = parse(Customer, event.message.value)
    key = event.message.key
    if key != customer.customerId.encode():
        raise Poison("customerId: not the record's key (the directory is keyed by customerId)")


def register(app: faust.App, ctx: Context) -> None:
    @app.agent(ctx.topics["crm.customers"], name="customers")
    async def customers(stream: faust.StreamT) -> None:
        await guarded(ctx, STAGE, stream, lambda e: handle(ctx, e))
