"""The customer's channel and the Message-ID of what is sent there: shared by delivery and acks."""
from __future__ import annotations

import hashlib

from agents.context import Context
from domain.bounces import message_id as build_message_id
from domain.delivery import AddressError, Route, normalize_email, route
from schemas.customers import Customer


def message_id(ctx: Context, interaction_id: str, kind: str) -> str:
    """Deterministic per invoice: `<interactionId.kind@mail domain>` (a hash for ids that
    do not fit a Message-ID), so a bounce leads back to its interaction."""
    try:
        return build_message_id(interaction_id, kind, ctx.services.transports.mail_domain())
    except ValueError:
        digest = hashlib.sha256(interaction_id.encode()).hexdigest()[:32]
        return f"<{digest}.{kind}@{ctx.services.transports.mail_domain()}>"


async def plan(ctx: Context, customer: Customer) -> Route:
    """The channel and the checked address, or why there is none."""
    await ctx.suppressions.ready()
    problems: dict[str, str | None] = {}
    check = ctx.services.transports.dns_check()
    if check is not None and customer.email and customer.preferences.transactionalEmail:
        try:
            address = normalize_email(customer.email)
        except AddressError:
            pass  # route() sends it to review as invalid
        else:
            problems[address] = await check.problem(address)
    return route(customer, suppressed=ctx.suppressions.reason, sms_enabled=ctx.services.transports.sms_enabled(),
                 email_problem=lambda a: problems.get(a), default_region=ctx.settings.sms_default_region)
