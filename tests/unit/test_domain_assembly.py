"""Joining detail events into interactions, without Kafka."""
from datetime import datetime, timezone

from domain.assembly import (
    analytics_facts, apply, deciding_code, interaction_from_pending, missing, seconds, wrapup_ids,
)
from schemas.genesys import DetailEventBody

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=timezone.utc)
END_MS = 1795651150000
CID = "conv-1"


def ev(**kw):
    return DetailEventBody.model_validate({"conversationId": CID, **kw})


CUSTOMER_END = ("customer.end", ev(eventTime=END_MS, mediaType="VOICE", externalContactId="c-1",
                                   interactingDurationMs=612_400))
USER_A = ("user.end", ev(eventTime=END_MS - 300_000, userId="a", queueId="q", interactingDurationMs=300_000))
ACW_A = ("acw", ev(eventTime=END_MS - 290_000, userId="a", queueId="q", wrapupCode="code-info"))
USER_B = ("user.end", ev(eventTime=END_MS, userId="b", queueId="q", interactingDurationMs=312_400))
ACW_B = ("acw", ev(eventTime=END_MS + 20_000, userId="b", queueId="q", wrapupCode="code-bill"))


def run(*events):
    p = None
    for kind, body in events:
        p, _ = apply(p, CID, kind, body, NOW)
    return p


def test_any_order_gives_the_same_state():
    orders = [
        [CUSTOMER_END, USER_A, ACW_A, USER_B, ACW_B],
        [ACW_B, USER_B, ACW_A, CUSTOMER_END, USER_A],
        [USER_A, ACW_B, CUSTOMER_END, ACW_A, USER_B],
    ]
    states = [run(*o) for o in orders]
    for p in states:
        assert not missing(p)
        assert p.customerEndAt == datetime.fromtimestamp(END_MS / 1000, timezone.utc)
        assert sorted(wrapup_ids(p)) == ["code-bill", "code-info"]
        assert p.contactIds == ["c-1"]


def test_repeated_events_are_recognised():
    p, new1 = apply(None, CID, *CUSTOMER_END, NOW)
    p, new2 = apply(p, CID, *CUSTOMER_END, NOW)
    assert (new1, new2) == (True, False)


def test_partial_conversations_name_what_is_missing():
    assert missing(run(USER_A)) == ["customer.end event", "wrap-up code"]
    assert missing(run(CUSTOMER_END, USER_A, USER_B, ACW_B)) == ["wrap-up code of every agent leg"]
    assert missing(run(ACW_A)) == ["customer.end event"]


def test_transfer_is_billable_when_any_agent_wrapped_it_up_billable():
    p = run(CUSTOMER_END, USER_A, ACW_A, USER_B, ACW_B)
    codes = [(c, {"code-info": "Information Only", "code-bill": "Billable Service"}[c]) for c in wrapup_ids(p)]
    assert deciding_code(codes, frozenset({"billable service"})) == ("code-bill", "Billable Service")
    assert deciding_code(codes, frozenset({"nothing"})) == ("code-bill", "Billable Service")  # the last
    assert deciding_code([("code-info", "Information Only")], frozenset({"code-info"})) == ("code-info", "Information Only")


def test_duration_is_the_customers_connected_time_rounded_half_up():
    p = run(CUSTOMER_END, USER_A, ACW_A, USER_B, ACW_B)
    i = interaction_from_pending(p, ("code-bill", "Billable Service"), "CUST-1")
    assert i.durationSeconds == 612  # 612.4 s
    assert i.endedAt == datetime.fromtimestamp(END_MS / 1000, timezone.utc)
    assert (i.endedAt - i.startedAt).total_seconds() == 612
    assert (i.interactionId, i.customerId, i.externalContactId, i.mediaType) == (CID, "CUST-1", "c-1", "VOICE")
    assert seconds(500) == 1 and seconds(499) == 0 and seconds(1500) == 2


def test_without_customer_duration_the_legs_add_up():
    no_duration = ("customer.end", ev(eventTime=END_MS))
    p = run(no_duration, USER_A, ACW_A, USER_B, ACW_B)
    assert interaction_from_pending(p, ("x", None), None).durationSeconds == 612


def test_wrapup_event_without_user_fills_the_open_leg():
    p = run(CUSTOMER_END, USER_A, ("wrapup", ev(eventTime=END_MS + 1, queueId="q", wrapupCode="code-bill")))
    assert not missing(p) and wrapup_ids(p) == ["code-bill"]


def test_analytics_conversation_gives_the_same_facts():
    conv = {
        "conversationId": CID, "conversationStart": "2026-11-24T23:49:00.000Z",
        "conversationEnd": "2026-11-24T23:59:40.000Z",
        "participants": [
            {"purpose": "customer", "externalContactId": "c-1", "sessions": [{"mediaType": "voice", "segments": [
                {"segmentType": "interact", "segmentStart": "2026-11-24T23:48:57.600Z", "segmentEnd": "2026-11-24T23:55:00.000Z"},
                {"segmentType": "hold", "segmentStart": "2026-11-24T23:55:00.000Z", "segmentEnd": "2026-11-24T23:56:00.000Z"},
                {"segmentType": "interact", "segmentStart": "2026-11-24T23:56:00.000Z", "segmentEnd": "2026-11-24T23:59:10.000Z"},
            ]}]},
            {"purpose": "agent", "userId": "b", "sessions": [{"mediaType": "voice", "segments": [
                {"segmentType": "interact", "segmentStart": "2026-11-24T23:54:00.000Z", "segmentEnd": "2026-11-24T23:59:10.000Z"},
                {"segmentType": "wrapup", "segmentStart": "2026-11-24T23:59:10.000Z",
                 "segmentEnd": "2026-11-24T23:59:40.000Z", "wrapUpCode": "code-bill", "queueId": "q"},
            ]}]},
        ],
    }
    p = analytics_facts(conv)
    assert not missing(p)
    i = interaction_from_pending(p, ("code-bill", "Billable Service"), "CUST-1")
    assert i.endedAt == datetime(2026, 11, 24, 23, 59, 10, tzinfo=timezone.utc)
    assert i.durationSeconds == 612 and i.mediaType == "VOICE" and i.externalContactId == "c-1"
    assert analytics_facts({**conv, "conversationEnd": None}) is None
