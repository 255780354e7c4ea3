"""The one table of stages: what each reads, and where parked, resubmitted or replayed work goes.

The retry agent sends parked work back to the input of the stage that parked it; a review
resubmit goes back to the stage that stopped the item (bounces: to delivery); `callbill
replay` re-publishes a stage's input topic. Agent names (the consumer group's view of the
stages) are fixed by deployments: changing one here would not rename an agent.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Stage:
    name: str  # as in audit records and review items
    input: str  # the topic it reads
    parks: bool = False  # may park work on callbill.retry (sent back to `input` when due)
    resubmit: str | None = None  # where a review resubmit of its items goes (None: not resubmittable)
    replayable: bool = False  # `callbill replay --topic <input>` feeds this stage
    by_key: bool = True  # keeps state by key, so a record must sit on its key's partition


STAGES: tuple[Stage, ...] = (
    Stage("assemble", "genesys.events", replayable=True),  # incomplete at Genesys: `callbill backfill` instead
    Stage("intake", "callbill.interactions", resubmit="callbill.interactions", replayable=True),
    Stage("billing", "callbill.billable", parks=True, resubmit="callbill.billable", replayable=True),
    Stage("credits", "callbill.credit-requests", parks=True, resubmit="callbill.credit-requests", replayable=True),
    Stage("documents", "callbill.invoices", parks=True, resubmit="callbill.invoices", replayable=True),
    Stage("delivery", "callbill.documents", parks=True, resubmit="callbill.documents", replayable=True),
    Stage("bounces", "callbill.bounces", resubmit="callbill.documents"),  # a bounced invoice: delivered again
    Stage("ack", "callbill.acks"),
    Stage("retry", "callbill.retry"),
    Stage("review", "callbill.review"),
    Stage("customers", "crm.customers", by_key=False),  # refusals to the DLQ; the directory is whole-topic
)

BY_NAME = {s.name: s for s in STAGES}
RETRY_TARGETS = frozenset(s.input for s in STAGES if s.parks)
RESUBMIT_TARGETS = {s.name: s.resubmit for s in STAGES if s.resubmit}
REPLAY_STAGE_OF = {s.input: s.name for s in STAGES if s.replayable}
