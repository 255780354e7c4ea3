"""Agentless email and SMS through the Genesys client, against the local fake of the API:
request shapes, the send rate limit, and what each answer means for "never twice"."""
from __future__ import annotations

import asyncio
import time

import pytest

from adapters.genesys import AGENTLESS_EMAIL, AGENTLESS_MESSAGE, GenesysClient, RateLimiter
from adapters.sending import SendRejected, SendRetryable, SendUnconfirmed
from fake_genesys import FakeGenesys


@pytest.fixture
def fake():
    with FakeGenesys() as f:
        yield f


def client_for(fake: FakeGenesys, **kw) -> GenesysClient:
    return GenesysClient(fake.client_id, fake.client_secret, api_url=fake.api_url, login_url=fake.login_url, **kw)


def run(coro):
    return asyncio.run(coro)


def test_agentless_email_and_sms_shapes(fake):
    async def go():
        c = client_for(fake)
        try:
            e = await c.send_agentless_email("invoices@callbill.example", "Billing", "jane@example.com",
                                             "Your invoice INV-1", "text", "<p>html</p>")
            s = await c.send_agentless_sms("+13125550199", "+13125550100", "Your invoice INV-1: https://x/y")
        finally:
            await c.aclose()
        return e, s
    e, s = run(go())
    assert e["conversationId"] and s["conversationId"]
    assert fake.emails == [{"senderType": "Outbound", "fromAddress": {"email": "invoices@callbill.example",
                                                                      "name": "Billing"},
                            "toAddresses": [{"email": "jane@example.com"}], "subject": "Your invoice INV-1",
                            "textBody": "text", "htmlBody": "<p>html</p>"}]
    assert fake.messages == [{"fromAddress": "+13125550199", "toAddress": "+13125550100",
                              "toAddressMessengerType": "sms", "textBody": "Your invoice INV-1: https://x/y"}]


def test_limits_are_checked_before_sending(fake):
    async def go():
        c = client_for(fake)
        try:
            with pytest.raises(ValueError, match="400"):
                await c.send_agentless_email("a@x.example", None, "b@x.example", "s" * 401, "t", "h")
            with pytest.raises(ValueError, match="765"):
                await c.send_agentless_sms("+13125550199", "+13125550100", "x" * 766)
        finally:
            await c.aclose()
    run(go())
    assert fake.emails == [] and fake.messages == []


def test_send_rate_is_respected(fake):
    async def go():
        c = client_for(fake)
        c.limiter = RateLimiter(600, 60)  # 10 a second: 0.1 s apart
        started = time.monotonic()
        try:
            await asyncio.gather(*(c.send_agentless_sms("+13125550199", "+13125550100", f"m{i}") for i in range(6)))
        finally:
            await c.aclose()
        return time.monotonic() - started
    elapsed = run(go())
    assert elapsed >= 0.5 and len(fake.messages) == 6


def test_answers_map_to_retry_rejected_and_unconfirmed(fake):
    async def go():
        c = client_for(fake, max_total_seconds=3)
        try:
            fake.fail_next(AGENTLESS_EMAIL, 429, count=1, retry_after=0.2)
            await c.send_agentless_email("a@x.example", None, "b@x.example", "s", "t", "h")  # retried after 429
            fake.fail_next(AGENTLESS_MESSAGE, 503, count=100, retry_after=1)
            with pytest.raises(SendRetryable):
                await c.send_agentless_sms("+13125550199", "+13125550100", "m")
            fake._faults.clear()
            fake.fail_next(AGENTLESS_MESSAGE, 500, count=1)
            with pytest.raises(SendUnconfirmed):  # may have been sent: never resent blindly
                await c.send_agentless_sms("+13125550199", "+13125550100", "m")
            with pytest.raises(SendRejected):  # the fake's own validation: not E.164
                await c.send_agentless_sms("+13125550199", "3125550100", "m")
            fake.expire_tokens()
            await c.send_agentless_sms("+13125550199", "+13125550100", "after a new token")
        finally:
            await c.aclose()
    run(go())
    assert len(fake.emails) == 1 and [m["textBody"] for m in fake.messages] == ["after a new token"]
    assert fake.count("POST", AGENTLESS_MESSAGE) >= 5
