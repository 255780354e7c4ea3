"""The Genesys Cloud client against the local fake: tokens, retries, limits, paging, wrap-up names."""
from __future__ import annotations

import asyncio
import json
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from adapters.genesys import GenesysClient, GenesysError, WrapupCodes, api_base, login_base
from fake_genesys import FakeGenesys, Leg, Scenario
from schemas.genesys import EventBridgeEvent, WebhookPayload

WRAPUP = "/api/v2/routing/wrapupcodes/"
BILLABLE_ID = "7fa1c2de-1b2c-4d3e-8f90-0123456789ab"


@pytest.fixture
def fake():
    with FakeGenesys() as f:
        f.wrapup_codes[BILLABLE_ID] = "Billable Service"
        yield f


def client_for(fake: FakeGenesys, **kw) -> GenesysClient:
    kw.setdefault("client_secret", fake.client_secret)
    return GenesysClient(fake.client_id, api_url=fake.api_url, login_url=fake.login_url, **kw)


def run(coro):
    return asyncio.run(coro)


# -- OAuth ---------------------------------------------------------------------------------


def test_token_is_fetched_once_and_shared_by_concurrent_callers(fake):
    async def main():
        async with client_for(fake) as c:
            names = await asyncio.gather(*(c.wrapup_code(BILLABLE_ID) for _ in range(10)))
            assert await c.wrapup_code(BILLABLE_ID)
            assert await c.external_contact("nobody") is None
            return names

    names = run(main())
    assert {n["name"] for n in names} == {"Billable Service"}
    assert fake.token_requests == 1


def test_token_refreshed_shortly_before_expiry(fake):
    fake.token_ttl = 1  # refreshed 10 % early: after ~0.9 s

    async def main():
        async with client_for(fake) as c:
            await c.wrapup_code(BILLABLE_ID)
            await asyncio.sleep(1.0)
            await c.wrapup_code(BILLABLE_ID)

    run(main())
    assert fake.token_requests == 2
    assert all(status == 200 for _, _, status in fake.responses)  # never sent a stale token


def test_token_expiring_mid_run_costs_one_401_and_a_fresh_token(fake):
    async def main():
        async with client_for(fake) as c:
            assert await c.wrapup_code(BILLABLE_ID)
            fake.expire_tokens()
            return await c.wrapup_code(BILLABLE_ID)

    assert run(main())["name"] == "Billable Service"
    assert fake.token_requests == 2
    assert [s for m, p, s in fake.responses if p.startswith(WRAPUP)] == [200, 401, 200]


def test_wrong_credentials_fail_without_leaking_the_secret(fake):
    secret = "wrong-s3cret-value-123"

    async def main():
        async with client_for(fake, client_secret=secret) as c:
            await c.wrapup_code(BILLABLE_ID)

    with pytest.raises(GenesysError) as e:
        run(main())
    assert (e.value.status, e.value.endpoint) == (401, "/oauth/token")
    assert "/oauth/token" in str(e.value) and "401" in str(e.value)
    assert secret not in str(e.value) and secret not in repr(e.value)
    assert fake.count("GET", "/api/") == 0


def test_client_repr_hides_the_secret(fake):
    c = GenesysClient("id", "very-secret", api_url=fake.api_url, login_url=fake.login_url)
    assert "very-secret" not in repr(c)
    run(c.aclose())


# -- retries -------------------------------------------------------------------------------


def test_429_waits_for_retry_after(fake):
    fake.fail_next(WRAPUP, 429, retry_after=1)

    async def main():
        async with client_for(fake) as c:
            await c.wrapup_code(BILLABLE_ID)  # token first, so the timing is the retry alone
            fake.fail_next(WRAPUP, 429, retry_after=1)
            t0 = time.monotonic()
            found = await c.wrapup_code(BILLABLE_ID)
            return found, time.monotonic() - t0

    found, waited = run(main())
    assert found["name"] == "Billable Service"
    assert waited >= 1.0
    assert [s for m, p, s in fake.responses if p.startswith(WRAPUP)] == [429, 200, 429, 200]


def test_5xx_then_success(fake):
    fake.fail_next(WRAPUP, 500)
    fake.fail_next(WRAPUP, 503)

    async def main():
        async with client_for(fake) as c:
            return await c.wrapup_code(BILLABLE_ID)

    assert run(main())["name"] == "Billable Service"
    assert [s for m, p, s in fake.responses if p.startswith(WRAPUP)] == [500, 503, 200]


def test_persistent_503_gives_up_within_the_total_time(fake):
    fake.fail_next(WRAPUP, 503, count=10_000)

    async def main():
        async with client_for(fake, max_total_seconds=1.5) as c:
            t0 = time.monotonic()
            try:
                await c.wrapup_code(BILLABLE_ID)
            except GenesysError as exc:
                return exc, time.monotonic() - t0
            raise AssertionError("no error")

    err, took = run(main())
    assert took < 2.5
    assert err.endpoint == "/api/v2/routing/wrapupcodes/{codeId}" and "/api/v2/routing/wrapupcodes/{codeId}" in str(err)
    # the error is the last 503, or (on a loaded machine) the last attempt cut off by the total time
    assert (err.status == 503 and "503" in str(err)) or (err.status is None and "no answer within" in str(err)), err
    assert [s for m, p, s in fake.responses if p.startswith(WRAPUP)][:2] == [503, 503]
    assert fake.client_secret not in str(err) and BILLABLE_ID not in str(err)
    assert fake.count("GET", WRAPUP) > 2  # it did retry


def test_other_4xx_is_not_retried(fake):
    fake.fail_next(WRAPUP, 403)

    async def main():
        async with client_for(fake) as c:
            await c.wrapup_code(BILLABLE_ID)

    with pytest.raises(GenesysError) as e:
        run(main())
    assert e.value.status == 403
    assert fake.count("GET", WRAPUP) == 1


def test_unreachable_host_is_bounded_too():
    with FakeGenesys() as f:
        port = f.port  # a port that was just released: nothing listens there

    async def main():
        url = f"http://127.0.0.1:{port}"
        async with GenesysClient("id", "secret-x", api_url=url, login_url=url, max_total_seconds=1) as c:
            await c.wrapup_code(BILLABLE_ID)

    t0 = time.monotonic()
    with pytest.raises(GenesysError) as e:
        run(main())
    assert time.monotonic() - t0 < 2.5
    assert e.value.endpoint == "/oauth/token" and e.value.status is None
    assert "secret-x" not in str(e.value)


# -- regions -------------------------------------------------------------------------------


def test_regions():
    assert api_base("mypurecloud.ie") == "https://api.mypurecloud.ie"
    assert api_base("eu-west-1") == "https://api.mypurecloud.ie"
    assert login_base("us-east-1") == "https://login.mypurecloud.com"
    assert api_base("use2.us-gov-pure.cloud") == "https://api.use2.us-gov-pure.cloud"
    assert api_base("ap-southeast-2") == "https://api.mypurecloud.com.au"
    assert login_base("mxc1.pure.cloud") == "https://login.mxc1.pure.cloud"
    with pytest.raises(ValueError) as e:
        api_base("mars-north-1")
    assert "mypurecloud.ie" in str(e.value) and "eu-west-1" in str(e.value)


# -- single resources ----------------------------------------------------------------------


def test_contact_and_details_in_sdk_shapes(fake):
    contact_id = str(uuid.uuid4())
    fake.contacts[contact_id] = {
        "firstName": "Jane", "lastName": "Doe", "workEmail": "jane@example.com",
        "cellPhone": {"display": "+1 317-555-0100", "e164": "+13175550100"},
        "address": {"address1": "1 Main St", "city": "Indianapolis", "state": "IN",
                    "postalCode": "46204", "countryCode": "US"},
    }
    sc = Scenario(external_contact_id=contact_id,
                  agents=[Leg("u1", "q1", talk_seconds=300, held_seconds=60, wrapup_code_id=BILLABLE_ID)])
    fake.conversations[sc.conversation_id] = sc.analytics_conversation()

    async def main():
        async with client_for(fake) as c:
            return (await c.external_contact(contact_id), await c.conversation_details(sc.conversation_id),
                    await c.conversation_details(str(uuid.uuid4())))

    contact, details, missing = run(main())
    assert contact["id"] == contact_id and contact["cellPhone"]["e164"] == "+13175550100"
    assert details["conversationEnd"] == "2026-11-24T22:21:00.000Z"
    assert missing is None


# -- analytics query -----------------------------------------------------------------------


def test_query_pages_through_ended_conversations_in_the_interval(fake):
    t0 = datetime(2026, 11, 24, 0, 0, tzinfo=timezone.utc)
    inside = []
    for i in range(250):
        sc = Scenario(start=t0 + timedelta(seconds=60 * i), agents=[Leg("u", "q", talk_seconds=30)])
        fake.conversations[sc.conversation_id] = sc.analytics_conversation()
        inside.append(sc.conversation_id)
    before = Scenario(start=t0 - timedelta(hours=2), agents=[Leg("u", "q", talk_seconds=30)])
    after = Scenario(start=t0 + timedelta(hours=10), agents=[Leg("u", "q", talk_seconds=30)])
    ongoing = Scenario(start=t0 + timedelta(minutes=5), agents=[Leg("u", "q", talk_seconds=30)])
    for sc in (before, after, ongoing):
        fake.conversations[sc.conversation_id] = sc.analytics_conversation()
    del fake.conversations[ongoing.conversation_id]["conversationEnd"]

    async def main():
        async with client_for(fake) as c:
            return [conv["conversationId"] async for conv in c.query_conversations(t0, t0 + timedelta(hours=6), 100)]

    assert run(main()) == inside  # all of them, each once, oldest first
    assert [q["paging"] for q in fake.queries] == [{"pageSize": 100, "pageNumber": n} for n in (1, 2, 3)]
    assert fake.queries[0] == {
        "interval": "2026-11-24T00:00:00.000Z/2026-11-24T06:00:00.000Z",
        "order": "asc",
        "orderBy": "conversationStart",
        "paging": {"pageSize": 100, "pageNumber": 1},
        "conversationFilters": [{"type": "and", "predicates": [
            {"type": "dimension", "dimension": "conversationEnd", "operator": "exists"}]}],
    }


def test_query_stops_at_total_hits_and_on_an_empty_interval(fake):
    t0 = datetime(2026, 11, 24, tzinfo=timezone.utc)
    for i in range(200):
        sc = Scenario(start=t0 + timedelta(seconds=i), agents=[Leg("u", "q", talk_seconds=1)])
        fake.conversations[sc.conversation_id] = sc.analytics_conversation()

    async def main():
        async with client_for(fake) as c:
            full = [x async for x in c.query_conversations(t0, t0 + timedelta(hours=1))]
            empty = [x async for x in c.query_conversations(t0 - timedelta(days=2), t0 - timedelta(days=1))]
            return full, empty

    full, empty = run(main())
    assert (len(full), empty) == (200, [])
    assert len(fake.queries) == 3  # two full pages (totalHits reached), one empty answer


def test_query_needs_aware_times(fake):
    async def main():
        async with client_for(fake) as c:
            async for _ in c.query_conversations(datetime(2026, 1, 1), datetime(2026, 1, 2)):
                pass

    with pytest.raises(ValueError):
        run(main())


# -- wrap-up code names --------------------------------------------------------------------


def test_static_mapping_needs_no_client():
    codes = WrapupCodes(None, mapping={BILLABLE_ID.upper(): "Billable Service"})
    assert run(codes.name(BILLABLE_ID)) == "Billable Service"
    assert run(codes.name(str(uuid.uuid4()))) is None


def test_mapping_from_json_or_csv(tmp_path: Path):
    j = tmp_path / "codes.json"
    j.write_text('{"%s": "Billable Service"}' % BILLABLE_ID)
    c = tmp_path / "codes.csv"
    c.write_text(f"# exported 2026-11-24\nid,name\n{BILLABLE_ID},\"Billable Service, Level 2\"\n\n")
    assert run(WrapupCodes.from_file(j, None).name(BILLABLE_ID)) == "Billable Service"
    assert run(WrapupCodes.from_file(c, None).name(BILLABLE_ID)) == "Billable Service, Level 2"


def test_non_uuid_codes_pass_through_without_a_call(fake):
    async def main():
        async with client_for(fake) as c:
            codes = WrapupCodes(c)
            return await codes.name("ININ-WRAP-UP-TIMEOUT"), await codes.name("Billable Service")

    assert run(main()) == ("ININ-WRAP-UP-TIMEOUT", "Billable Service")
    assert fake.requests == [] and fake.token_requests == 0


def test_names_are_cached_for_the_ttl(fake):
    now = [1000.0]

    async def main():
        async with client_for(fake) as c:
            codes = WrapupCodes(c, ttl=3600, clock=lambda: now[0])
            first = await asyncio.gather(*(codes.name(BILLABLE_ID) for _ in range(5)))
            again = await codes.name(BILLABLE_ID)
            calls_within_ttl = fake.count("GET", WRAPUP)
            now[0] += 3601
            fake.wrapup_codes[BILLABLE_ID] = "Billable Service (renamed)"
            return first, again, calls_within_ttl, await codes.name(BILLABLE_ID)

    first, again, calls_within_ttl, later = run(main())
    assert set(first) == {"Billable Service"} and again == "Billable Service"
    assert calls_within_ttl == 1  # concurrent and repeated lookups: one call
    assert later == "Billable Service (renamed)"
    assert fake.count("GET", WRAPUP) == 2


def test_unknown_id_is_none_and_briefly_cached(fake):
    now = [0.0]
    unknown = str(uuid.uuid4())

    async def main():
        async with client_for(fake) as c:
            codes = WrapupCodes(c, clock=lambda: now[0])
            results = [await codes.name(unknown), await codes.name(unknown)]
            now[0] += 61
            results.append(await codes.name(unknown))
            return results

    assert run(main()) == [None, None, None]
    assert fake.count("GET", WRAPUP) == 2


def test_api_failure_is_raised_not_cached(fake):
    fake.fail_next(WRAPUP, 403)

    async def main():
        async with client_for(fake) as c:
            codes = WrapupCodes(c)
            with pytest.raises(GenesysError):
                await codes.name(BILLABLE_ID)
            return await codes.name(BILLABLE_ID)

    assert run(main()) == "Billable Service"


# -- the scenario builder renders shapes the bridge accepts --------------------------------


def test_scenario_shapes_agree():
    sc = Scenario(
        external_contact_id="c0ffee00-0000-4000-8000-00000000beef",
        service_type="Consultation Service - Level 2",
        agents=[Leg("u1", "q1", talk_seconds=120, held_seconds=30),
                Leg("u2", "q2", talk_seconds=300.4, wrapup_code_id=BILLABLE_ID, wrapup_notes="ok", agent_name="Alex")],
    )
    events = sc.eventbridge_events()
    kinds = [EventBridgeEvent.model_validate(e).event_kind for e in events]
    assert sorted(kinds) == ["acw", "customer.end", "user.end", "user.end"]
    assert events == sc.eventbridge_events()  # stable: re-rendering gives true repeats
    end = next(e["detail"]["eventBody"] for e in events if e["detail"]["topicName"].endswith("customer.end"))
    assert end["interactingDurationMs"] == sc.customer_interacting_ms == 450_400
    assert end["eventTime"] == round(sc.end.timestamp() * 1000)

    conv = sc.analytics_conversation()
    agents = [p for p in conv["participants"] if p["purpose"] == "agent"]
    wrap = [s for p in agents for s in p["sessions"][0]["segments"] if s["segmentType"] == "wrapup"]
    assert [(s["wrapUpCode"], s["wrapUpNote"]) for s in wrap] == [(BILLABLE_ID, "ok")]
    customer_segments = conv["participants"][0]["sessions"][0]["segments"]
    assert customer_segments[0]["segmentStart"] == conv["conversationStart"] == "2026-11-24T22:15:00.000Z"
    assert customer_segments[-1]["segmentEnd"] == conv["conversationEnd"] == "2026-11-24T22:22:30.400Z"

    hook = WebhookPayload.model_validate(sc.webhook_payload("CUST-1", "Billable Service"))
    assert (hook.interactionId, hook.durationSeconds, hook.agentName) == (sc.conversation_id, 450, "Alex")
    assert hook.timestamp == sc.start


def test_mapping_as_the_genesys_api_answers_it(tmp_path: Path):
    """`GET /api/v2/routing/wrapupcodes?pageSize=500` saved as it is."""
    f = tmp_path / "wrapupcodes.json"
    f.write_text(json.dumps({"entities": [
        {"id": BILLABLE_ID.upper(), "name": "Billable Service", "dateCreated": "2026-01-05T10:00:00Z",
         "division": {"id": "d-1"}, "selfUri": f"/api/v2/routing/wrapupcodes/{BILLABLE_ID}"},
        {"id": "0b1c2d3e-0000-4000-8000-000000000001", "name": "No Charge"}],
        "pageSize": 500, "pageNumber": 1, "total": 2, "pageCount": 1}))
    codes = WrapupCodes.from_file(f, None)
    assert run(codes.name(BILLABLE_ID)) == "Billable Service"
    assert run(codes.name("0b1c2d3e-0000-4000-8000-000000000001")) == "No Charge"

    f.write_text(json.dumps({"entities": [{"id": BILLABLE_ID, "name": "Billable Service"}],
                             "pageSize": 25, "pageNumber": 1, "total": 60, "pageCount": 3}))
    with pytest.raises(ValueError, match=r"page 1 of 3 .*pageSize=500"):
        WrapupCodes.from_file(f, None)
    f.write_text(json.dumps({"entities": [{"id": BILLABLE_ID}]}))
    with pytest.raises(ValueError, match=r"entities\[0\] needs an `id` and a `name`"):
        WrapupCodes.from_file(f, None)
    f.write_text('{"entities": [')
    with pytest.raises(ValueError, match="not JSON"):
        WrapupCodes.from_file(f, None)
