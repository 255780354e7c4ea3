"""Provider bounce and complaint notifications, each report onto callbill.bounces (agents/bounces.py).

- /bounces/ses: Amazon SNS as it posts (text/plain, no header we could set), proven by
  SNS's own signature and limited to the topics in CALLBILL_SNS_TOPIC_ARNS; a subscription
  is confirmed when SNS asks.
- /bounces/sendgrid: the SendGrid Event Webhook, proven by its ECDSA signature over
  timestamp + body (CALLBILL_SENDGRID_PUBLIC_KEY); old timestamps are refused.
- /bounces/provider: either provider's JSON relayed by something of your own,
  authenticated like the bridge (X-Callbill-Signature or bearer).

A notification sent twice (a provider's retry, a replay) carries the provider's event id,
and the bounces stage counts it once.
"""
from __future__ import annotations

import json
from typing import Any

from aiohttp.web import Request, Response
from faust.web import View

from agents.bounces import bounce_of, publish_bounce
from agents.context import Context
from app.web.bridge import Refusal, check_auth, decode_json, parse_json, read_body
from domain.bounces import BounceParseError, BounceReport, parse_provider
from domain.provider_auth import SignatureError, verify_sendgrid, verify_sns
from runtime.logs import get_logger

log = get_logger("bounces")


async def _publish(ctx: Context, reports: list[BounceReport]) -> None:
    for r in reports:
        await publish_bounce(ctx, bounce_of(ctx, r))


def _reports(payload: Any) -> list[BounceReport]:
    try:
        return parse_provider(payload)
    except BounceParseError as e:
        raise Refusal(422, str(e)) from None


async def ses_via_sns(ctx: Context, request: Request) -> Response:
    topics = ctx.settings.sns_topic_set
    if not topics:
        raise Refusal(404, "SNS notifications are off: set CALLBILL_SNS_TOPIC_ARNS")
    msg = decode_json(await read_body(request, ctx.settings))  # SNS says text/plain
    if not isinstance(msg, dict):
        raise Refusal(400, "an SNS message is a JSON object")
    if msg.get("TopicArn") not in topics:
        raise Refusal(403, "TopicArn is not in CALLBILL_SNS_TOPIC_ARNS")
    try:
        verify_sns(msg, await ctx.services.sns.certificate(str(msg.get("SigningCertURL") or "")))
        kind = msg.get("Type")
        if kind == "SubscriptionConfirmation":
            await ctx.services.sns.confirm(str(msg.get("SubscribeURL") or ""))
            log.info("SNS subscription confirmed", extra={"stage": "bounces", "reason": msg["TopicArn"]})
            return Response(status=200, content_type="application/json", text=json.dumps({"confirmed": msg["TopicArn"]}))
    except SignatureError as e:
        raise Refusal(401, f"not proven to come from SNS: {e}") from None
    if kind != "Notification":
        return Response(status=200, content_type="application/json", text=json.dumps({"ignored": kind}))
    reports = _reports(msg)
    await _publish(ctx, reports)
    return Response(status=202, content_type="application/json", text=json.dumps({"accepted": len(reports)}))


async def sendgrid(ctx: Context, request: Request) -> Response:
    key = ctx.services.sendgrid_key
    if key is None:
        raise Refusal(404, "SendGrid events are off: set CALLBILL_SENDGRID_PUBLIC_KEY")
    body = await read_body(request, ctx.settings)
    try:
        verify_sendgrid(key, request.headers.get("X-Twilio-Email-Event-Webhook-Signature"),
                        request.headers.get("X-Twilio-Email-Event-Webhook-Timestamp"), body,
                        ctx.settings.sendgrid_max_age, ctx.clock())
    except SignatureError as e:
        raise Refusal(401, f"not proven to come from SendGrid: {e}") from None
    reports = _reports(parse_json(request, body))
    await _publish(ctx, reports)
    return Response(status=202, content_type="application/json", text=json.dumps({"accepted": len(reports)}))


def register(app: Any, ctx: Context) -> None:
    def answer(r: Refusal) -> Response:
        return Response(status=r.status, headers=r.headers, content_type="application/json",
                        text=json.dumps({"error": r.error, **r.extra}))

    @app.page("/bounces/ses")
    class SesViaSns(View):
        async def post(self, request: Request) -> Response:
            try:
                return await ses_via_sns(ctx, request)
            except Refusal as r:
                return answer(r)

    @app.page("/bounces/sendgrid")
    class SendGridEvents(View):
        async def post(self, request: Request) -> Response:
            try:
                return await sendgrid(ctx, request)
            except Refusal as r:
                return answer(r)

    @app.page("/bounces/provider")
    class ProviderBounces(View):
        """Either provider's JSON, relayed by you; authenticated like the bridge."""

        async def post(self, request: Request) -> Response:
            try:
                body = await read_body(request, ctx.settings)
                check_auth(request, body, ctx.settings)
                reports = _reports(parse_json(request, body))
                await _publish(ctx, reports)
                return self.json({"accepted": len(reports)}, status=202)
            except Refusal as r:
                return answer(r)
