"""Delivery's decisions in process, billing to the last message: every route, content rules,
bounces and suppression, acknowledgements, and what a stage does when it reads a message
again. The stages of agents/ run in one process (tests/support/pipeline.py); the outside
systems are real servers on loopback: SMTP (aiosmtpd), DNS (dnslib), the reference ERP,
and the fake Genesys API (the real one cannot run here).

What needs a broker (a kill -9 mid-send, the changelog restored by a new worker, the
bridge) is in tests/integration/test_delivery.py and tests/e2e.
"""
from __future__ import annotations

import asyncio
import json
import re
import time
from datetime import datetime, timedelta

import pytest

from agents.bounces import bounce_of, publish_bounce
from devtools.reference_erp import ReferenceErp
from domain.bounces import parse_provider
from domain.ledger import State
from fake_genesys import FakeGenesys
from pipeline import Pipeline
from stage_context import make_context

ADDR = {"line1": "1 Main St", "city": "Springfield", "region": "IL", "postalCode": "62701", "country": "US"}
NO_EMAIL = {"transactionalEmail": False, "marketingEmail": False, "sms": True, "postal": True}


def cust(cid: str, **kw) -> dict:
    return {"customerId": cid, "name": "Jane Doe", "timezone": "America/Chicago", "currency": "USD",
            "postalAddress": ADDR, **kw}


def billable(iid: str, customer: str) -> dict:
    return {"interactionId": iid, "source": "webhook", "customerId": customer, "endedAt": "2026-11-24T22:15:00Z",
            "durationSeconds": 754, "serviceType": "Consultation Service - Level 2", "wrapupCode": "Billable Service"}


def by_iid(records: list[dict]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for r in records:
        out.setdefault(r["interactionId"], []).append(r)
    return out


def smtp(mail_sink) -> str:
    return f"smtp://127.0.0.1:{mail_sink.port}?starttls=off"


async def load(p: Pipeline, customers: list[dict]) -> None:
    for c in customers:
        await p.send("crm.customers", c, key=c["customerId"])


ROUTE_CUSTOMERS = [
    # marketing opt-out only: invoices are transactional, so email; a card number in the
    # name must not leave unmasked
    cust("C-EMAIL", name="Jane 4111 1111 1111 1111 Doe", email="Jane.Doe@Example.com",
         preferences={"transactionalEmail": True, "marketingEmail": False, "sms": True, "postal": True}),
    cust("C-SMS", email="sms@example.com", phone="(312) 555-0100", preferences=NO_EMAIL),
    cust("C-POST", email="post@example.com", preferences=NO_EMAIL),
    cust("C-SUPP", email="suppressed@example.com"),
    cust("C-INVALID", email="not-an-address"),
    cust("C-NONE", email="none@example.com", postalAddress=None,
         preferences={"transactionalEmail": False, "sms": False, "postal": True}),
    cust("C-DEAD", email="gone@dead.example"),
    cust("C-DEAD2", email="GONE@dead.example"),
]


@pytest.fixture
def genesys():
    with FakeGenesys() as g:
        yield g


def test_every_route_content_and_bounce_suppression(tmp_path, mail_sink, genesys):
    mail_sink.handler.reject = re.compile(r"@dead\.example$", re.IGNORECASE)
    ctx = make_context(tmp_path, smtp_url=smtp(mail_sink), public_url="http://127.0.0.1:8080",
                       genesys_client_id=genesys.client_id, genesys_client_secret=genesys.client_secret,
                       genesys_api_url=genesys.api_url, genesys_login_url=genesys.login_url,
                       sms_from="+13125550199", reconcile_hours=0)
    ids = {c["customerId"]: f"r-{c['customerId'].lower()}" for c in ROUTE_CUSTOMERS if c["customerId"] != "C-DEAD2"}

    async def go():
        async with Pipeline(ctx) as p:
            await load(p, ROUTE_CUSTOMERS)
            await p.send("callbill.suppressions", {"address": "suppressed@example.com", "reason": "hard",
                                                   "status": "5.1.1", "source": "dsn", "time": "2026-11-01T00:00:00Z"},
                         key="suppressed@example.com")
            for cid, iid in ids.items():
                await p.send("callbill.billable", billable(iid, cid))
            await p.settle()
            # the hard bounce suppressed the address: the next invoice to it is not sent
            await p.send("callbill.billable", billable("r-c-dead2", "C-DEAD2"))
            await p.settle()
            # a replay of the documents topic sends nothing a second time
            for d in ctx.out("callbill.documents"):
                await p.send("callbill.documents", d)
            await p.settle()
    asyncio.run(go())

    reviews, deliveries = by_iid(ctx.out("callbill.review")), by_iid(ctx.out("callbill.deliveries"))
    assert reviews[ids["C-SUPP"]][0]["reason"] == "PENDING_REVIEW:EMAIL_SUPPRESSED"
    # refused by the customer model before any invoice (issue 17, point 7), the field named
    assert reviews[ids["C-INVALID"]][0]["reason"] == "INVALID_CUSTOMER"
    assert "email: not a valid address" in reviews[ids["C-INVALID"]][0]["detail"]
    assert reviews[ids["C-NONE"]][0]["reason"] == "NO_DELIVERY_CHANNEL"
    assert "sms: not allowed" in reviews[ids["C-NONE"]][0]["detail"]
    assert reviews[ids["C-DEAD"]][0]["reason"] == "PENDING_REVIEW:BOUNCED"
    assert reviews["r-c-dead2"][0]["reason"] == "PENDING_REVIEW:EMAIL_SUPPRESSED"
    for items in reviews.values():  # what the reviewer sees names no address
        assert not re.search(r"[\w.-]+@[\w.-]+", json.dumps(items)) and "not-an-address" not in json.dumps(items)

    # email (marketing opt-out only)
    email = deliveries[ids["C-EMAIL"]][0]
    assert (email["channel"], email["transport"]) == ("EMAIL", "smtp") and len(email["providerId"]) == 12
    mails = mail_sink.messages()
    assert len(mails) == 1  # only C-EMAIL's; the dead address was refused, the others not mailed
    m = mails[0]
    assert m["To"] == "Jane.Doe@example.com"  # normalized domain
    assert m["Message-ID"] == f"<{ids['C-EMAIL']}.invoice@callbill.example>"
    assert re.fullmatch(r"Your invoice INV0\d-00000\d", m["Subject"])
    assert "Jane" not in str(m["Subject"]) and "C-EMAIL" not in m.as_string().split("\n\n", 1)[0]
    text = m.get_body(("plain",)).get_content()
    html = m.get_body(("html",)).get_content()
    assert "4111 11** **** 1111" in text and "4111 1111 1111 1111" not in m.as_string()
    assert "Amount due: $" in text and "/files/invoices/" in text and "valid until" in text and "CST" in text
    assert "/invoices/" in html and "/link?token=" in html and "&amp;" in html

    # No Email with a phone: SMS through Genesys agentless messaging
    sms = deliveries[ids["C-SMS"]][0]
    assert (sms["channel"], sms["transport"]) == ("SMS", "genesys")
    assert len(genesys.messages) == 1
    body = genesys.messages[0]
    assert body["toAddress"] == "+13125550100" and body["toAddressMessengerType"] == "sms"
    assert body["fromAddress"] == "+13125550199" and len(body["textBody"]) <= 765
    assert "/link?token=" in body["textBody"] and "Jane" not in body["textBody"]

    # No Email without a phone: a postal job with the address block and the PDF
    post = deliveries[ids["C-POST"]][0]
    assert post["channel"] == "POSTAL"
    [job] = ctx.out("callbill.postal")
    assert job["recipient"]["lines"] == ["1 Main St", "62701 Springfield, IL", "US"]
    assert job["documentKey"].startswith("invoices/") and post["providerId"].endswith("/0")

    assert any(s["address"] == "gone@dead.example" and s["reason"] == "hard" for s in ctx.out("callbill.suppressions"))
    assert ctx.outcomes("delivery").count("ALREADY_DELIVERED") >= 3  # the replayed documents
    assert len(mail_sink.messages()) == 1 and len(genesys.messages) == 1 and len(ctx.out("callbill.postal")) == 1


def test_dsn_soft_and_provider_bounces(tmp_path, mail_sink):
    """A DSN from the bounce mailbox (hard); soft bounces (DSN 4.2.2, RCPT 450) retried up to
    the limit, then suppressed; an SES complaint as the provider endpoint publishes it (the
    endpoint itself: tests/e2e/test_bridge.py)."""
    h = mail_sink.handler
    h.bounce, h.soft_bounce, h.defer = re.compile(r"@later\.example$"), re.compile(r"^full@"), re.compile(r"^busy@")
    bounce_dir = tmp_path / "bounces"
    h.bounce_dir = bounce_dir
    bounce_dir.mkdir()
    ctx = make_context(tmp_path, smtp_url=smtp(mail_sink), bounce_maildir=str(bounce_dir), soft_bounce_limit=2,
                       retry_base_delay=0.2, retry_max_delay=0.5, delivery_attempts=2, backoff_base=0.05)
    wanted = {"b-later", "b-full", "b-busy"}

    def reviewed() -> set[str]:
        return {r["interactionId"] for r in ctx.out("callbill.review")}

    async def go():
        async with Pipeline(ctx) as p:
            await load(p, [cust("C-LATER", email="user@later.example"), cust("C-OK", email="ok@example.com"),
                           cust("C-FULL", email="full@example.com"), cust("C-BUSY", email="busy@example.com")])
            for iid, cid in (("b-later", "C-LATER"), ("b-ok", "C-OK"), ("b-full", "C-FULL"), ("b-busy", "C-BUSY")):
                await p.send("callbill.billable", billable(iid, cid))
            deadline = time.monotonic() + 60
            while not reviewed() >= wanted and time.monotonic() < deadline:
                await p.scan_bounces()  # the worker's timer, CALLBILL_BOUNCE_POLL_INTERVAL
                await p.settle()
            ses = {"notificationType": "Complaint",
                   "complaint": {"complainedRecipients": [{"emailAddress": "ok@example.com"}],
                                 "complaintFeedbackType": "abuse"},
                   "mail": {"commonHeaders": {"messageId": "<b-ok.invoice@callbill.example>"}}}
            for report in parse_provider({"Type": "Notification", "Message": json.dumps(ses)}):
                await publish_bounce(ctx, bounce_of(ctx, report))
            p._route_new()
            await p.settle()
    asyncio.run(go())
    reviews = by_iid(ctx.out("callbill.review"))
    assert {k: [r["reason"] for r in v] for k, v in reviews.items()} == {
        k: ["PENDING_REVIEW:BOUNCED"] for k in wanted | {"b-ok"}}
    assert len(list((bounce_dir / "processed").iterdir())) == 3  # one hard DSN, two soft ones
    mails = [str(m["To"]) for m in mail_sink.messages()]
    # the soft-bounced invoice was sent again once, then the limit was reached
    assert sorted(mails) == ["full@example.com", "full@example.com", "ok@example.com", "user@later.example"]
    assert {(s["address"], s["reason"]) for s in ctx.out("callbill.suppressions")} == {
        ("user@later.example", "hard"), ("full@example.com", "soft-limit"), ("busy@example.com", "soft-limit"),
        ("ok@example.com", "complaint")}


def test_acknowledgement_only_when_the_invoice_is_late(tmp_path, mail_sink):
    erp = ReferenceErp(token="erp-token").start()
    try:
        ctx = make_context(tmp_path, smtp_url=smtp(mail_sink), erp_url=erp.url, erp_token="erp-token",
                           ack_after_seconds=1, retry_base_delay=0.5, retry_max_delay=1)
        erp.behaviour.fail_keys = {"ack-late"}

        async def go():
            async with Pipeline(ctx) as p:
                await load(p, [cust("C-A", email="a@example.com"), cust("C-B", email="b@example.com")])
                for iid, c in (("ack-fast", "C-B"), ("ack-late", "C-A")):
                    await p.send("callbill.interactions", billable(iid, c))
                await p.settle(ignore=(), until=lambda: "ack" in [d["kind"] for d in ctx.out("callbill.deliveries")])
                erp.behaviour.fail_keys = set()
                await p.settle(ignore=(), timeout=60)
        asyncio.run(go())
    finally:
        erp.stop()
    deliveries = by_iid(ctx.out("callbill.deliveries"))
    assert [d["kind"] for d in deliveries["ack-fast"]] == ["invoice"]
    assert sorted(d["kind"] for d in deliveries["ack-late"]) == ["ack", "invoice"]
    ack = next(d for d in deliveries["ack-late"] if d["kind"] == "ack")
    invoice = next(d for d in deliveries["ack-late"] if d["kind"] == "invoice")
    [due] = [a for a in ctx.out("callbill.acks") if a["interactionId"] == "ack-late"]
    # not before CALLBILL_ACK_AFTER_SECONDS after intake, and before the invoice itself
    assert datetime.fromisoformat(due["dueAt"]) - datetime.fromisoformat(due["intakeAt"]) == timedelta(seconds=1)
    assert datetime.fromisoformat(due["dueAt"]) <= datetime.fromisoformat(ack["time"]) < datetime.fromisoformat(
        invoice["time"])
    subjects = sorted(str(m["Subject"]) for m in mail_sink.messages() if m["To"] == "a@example.com")
    assert len(subjects) == 2 and subjects[0] == "We are preparing your invoice"
    assert len([m for m in mail_sink.messages() if m["To"] == "b@example.com"]) == 1
    assert ctx.outcomes("ack") == ["ACKNOWLEDGED"]  # ack-fast was delivered in time: nothing to say
    assert len(mail_sink.messages()) == 3  # and never a second acknowledgement


def test_an_acknowledgement_past_its_deadline_is_given_up(tmp_path, mail_sink):
    """The invoice is late (ERP failing) and the SMTP server is busy past the ack's deadline:
    no acknowledgement later than CALLBILL_ACK_DEADLINE_SECONDS after intake, ever; the
    invoice itself still goes out once the ERP and SMTP recover."""
    erp = ReferenceErp(token="erp-token").start()
    try:
        ctx = make_context(tmp_path, smtp_url=smtp(mail_sink), erp_url=erp.url, erp_token="erp-token",
                           ack_after_seconds=1, ack_deadline_seconds=2, retry_base_delay=0.5, retry_max_delay=1,
                           backoff_base=0.05)
        erp.behaviour.fail_keys = {"ack-stale"}
        mail_sink.handler.busy(4)  # every MAIL answered 421 for 4 s

        async def go():
            async with Pipeline(ctx) as p:
                await load(p, [cust("C-L", email="late@example.com")])
                await p.send("callbill.interactions", billable("ack-stale", "C-L"))
                await p.settle(ignore=(), until=lambda: ctx.outcomes("ack"), timeout=30)
                erp.behaviour.fail_keys = set()
                await p.settle(ignore=(), timeout=60,
                               until=lambda: any(d["kind"] == "invoice" for d in ctx.out("callbill.deliveries")))
                await p.settle(ignore=())
        asyncio.run(go())
    finally:
        erp.stop()
    ack = [(a["outcome"], a.get("reason")) for a in ctx.out("callbill.audit") if a["stage"] == "ack"]
    assert ack and ack[0][0] in ("ACK_FAILED", "ACK_SKIPPED"), ack
    assert [d["kind"] for d in ctx.out("callbill.deliveries")] == ["invoice"]
    assert mail_sink.messages() and all("preparing" not in str(m["Subject"]) for m in mail_sink.messages())


def test_the_dns_check_sends_an_undeliverable_domain_to_review(tmp_path, mail_sink):
    """CALLBILL_EMAIL_DNS_CHECK through a real DNS server on loopback: a domain with an MX is
    mailed, one that does not exist is not tried and goes to review (edge case 3)."""
    from dns_server import ZONES, LocalDns

    with LocalDns(ZONES) as dns:
        ctx = make_context(tmp_path, smtp_url=smtp(mail_sink), email_dns_check=True, email_dns_servers=dns.address)

        async def go():
            async with Pipeline(ctx) as p:
                await load(p, [cust("C-MX", email="jane@callbill-ok.com"), cust("C-NX", email="jane@callbill-dead.com")])
                await p.send("callbill.billable", billable("dns-ok", "C-MX"))
                await p.send("callbill.billable", billable("dns-dead", "C-NX"))
                await p.settle()
        asyncio.run(go())
        asked = dict(dns.resolver.asked)
    reviews = ctx.out("callbill.review")
    assert [m["To"] for m in mail_sink.messages()] == ["jane@callbill-ok.com"]
    assert [(r["interactionId"], r["reason"]) for r in reviews] == [("dns-dead", "PENDING_REVIEW:EMAIL_UNDELIVERABLE")]
    assert "callbill-dead.com" not in json.dumps(reviews)  # the reason, not the address
    assert asked[("callbill-ok.com", "MX")] == 1 and asked[("callbill-dead.com", "MX")] == 1


# --- read again: what a stage does with a message redelivered after a crash -------------

def test_a_document_read_again_announces_its_delivery_again_and_mails_nothing(tmp_path, mail_sink):
    """A kill after the ledger had the outcome but before the delivery record and its audit
    landed (the chaos run found one): the document is read again from the same offset, since
    its batch was never committed. The record and the audit are written again; no second email."""
    ctx = make_context(tmp_path, smtp_url=smtp(mail_sink))

    async def go():
        async with Pipeline(ctx) as p:
            await load(p, [cust("C-R", email="r@example.com")])
            await p.send("callbill.billable", billable("r-1", "C-R"))
            await p.settle()
            await p.again("callbill.documents", 0)
            await p.settle()
    asyncio.run(go())
    first, again = ctx.out("callbill.deliveries")
    assert again == first  # the same record, written again from the ledger
    told = [a for a in ctx.out("callbill.audit") if a["interactionId"] == "r-1" and a["stage"] == "delivery"]
    assert [a["outcome"] for a in told] == ["DELIVERED", "DELIVERED"], told
    assert "republished after a restart" in told[1]["reason"]
    assert len(mail_sink.messages()) == 1  # never mailed twice


def test_every_stage_read_again_after_a_later_stages_review_keeps_the_review_and_issues_nothing_new(
        tmp_path, mail_sink):
    """A kill leaves each stage's last batch uncommitted, though the ledger has moved on (a
    chaos run lost intake's FORWARDED this way: read again, it was taken for a duplicate).
    Here delivery had put the interaction in review; then intake, billing and documents
    read their messages again and billing gets a replayed copy. Each audits its decision
    again; there is no second invoice or render, and the ledger stays in review."""
    ctx = make_context(tmp_path, smtp_url=smtp(mail_sink))
    interaction = billable("nr-1", "C-NR")

    async def go():
        async with Pipeline(ctx) as p:
            # postal only, and no postal address: delivery sends it to review (no route)
            await load(p, [cust("C-NR", email="nr@example.com", postalAddress=None,
                                preferences={"transactionalEmail": False, "sms": False, "postal": True})])
            await p.send("callbill.interactions", interaction)
            await p.settle()
            assert [r["stage"] for r in ctx.out("callbill.review")] == ["delivery"]
            for topic in ("callbill.interactions", "callbill.billable", "callbill.invoices"):
                await p.again(topic, 0)
            await p.send("callbill.billable", interaction)  # a replay: a new message
            await p.settle()
    asyncio.run(go())
    audit: dict[str, list[tuple[str, str]]] = {}
    for a in ctx.out("callbill.audit"):
        audit.setdefault(a["stage"], []).append((a["outcome"], a.get("reason") or ""))
    assert [o for o, _ in audit["intake"]] == ["FORWARDED", "FORWARDED"], audit
    assert "read again" in audit["intake"][1][1]
    assert sorted(o for o, _ in audit["billing"]) == ["ALREADY_BILLED", "BILLED", "BILLED"], audit
    assert [o for o, r in audit["documents"] if o == "DOCUMENTED" and "republished" not in r] == ["DOCUMENTED"], audit
    assert len({i["invoiceNumber"] for i in ctx.out("callbill.invoices")}) == 1  # one invoice, published again
    assert len(ctx.out("callbill.billable")) == 2  # the first forward and the replay: intake sent nothing again
    assert ctx.ledger.get("nr-1").state is State.REVIEW
    assert ctx.reviews.get("nr-1").stage == "delivery"
    assert mail_sink.messages() == []


def test_an_unconfirmed_send_read_again_announces_its_review_again_and_mails_nothing(tmp_path, mail_sink):
    """The SMTP answer to DATA never comes in time: DELIVERY_UNCONFIRMED. A kill before its
    review landed would leave the document to be read again with the ledger already in
    review; that read must announce the review again (before, it wrote nothing)."""
    mail_sink.handler.data_delay = 3
    ctx = make_context(tmp_path, smtp_url=smtp(mail_sink), smtp_timeout=1)

    async def go():
        async with Pipeline(ctx) as p:
            await load(p, [cust("C-U", email="u@example.com")])
            await p.send("callbill.billable", billable("u-1", "C-U"))
            await p.settle()
            assert [r["reason"] for r in ctx.out("callbill.review")] == ["DELIVERY_UNCONFIRMED"]
            mail_sink.handler.data_delay = 0
            await p.again("callbill.documents", 0)
            await p.settle()
    asyncio.run(go())
    assert [(r["stage"], r["reason"]) for r in ctx.out("callbill.review")] == [("delivery", "DELIVERY_UNCONFIRMED")] * 2
    assert [a["outcome"] for a in ctx.out("callbill.audit") if a["stage"] == "delivery"] == ["REVIEW", "REVIEW"]
    assert len(mail_sink.messages()) <= 1  # the held message may have arrived after all; never sent again
