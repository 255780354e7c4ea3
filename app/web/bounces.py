"""Provider bounce notifications (SES direct or through SNS, SendGrid) posted to /bounces/provider.

Authenticated like the bridge; each report goes onto callbill.bounces (agents/bounces.py).
"""
from __future__ import annotations

from aiohttp.web import Request, Response
from faust.web import View

from typing import Any

from agents.bounces import bounce_of, publish_bounce
from agents.context import Context
from app.web.bridge import Refusal, check_auth, parse_json, read_body
from domain.bounces import BounceParseError, parse_provider


def register(app: Any, ctx: Context) -> None:
    @app.page("/bounces/provider")
    class ProviderBounces(View):
        """SES (direct or through SNS) and SendGrid event webhooks; authenticated like the bridge."""

        async def post(self, request: Request) -> Response:
            try:
                body = await read_body(request, ctx.settings)
                check_auth(request, body, ctx.settings)
                try:
                    reports = parse_provider(parse_json(request, body))
                except BounceParseError as e:
                    raise Refusal(422, str(e)) from None
                for r in reports:
                    await publish_bounce(ctx, bounce_of(ctx, r))
                return self.json({"accepted": len(reports)}, status=202)
            except Refusal as r:
                return self.json({"error": r.error, **r.extra}, status=r.status, headers=r.headers)
