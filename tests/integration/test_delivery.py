"""Delivery through a real broker, a real SMTP server (aiosmtpd) and the fake Genesys API:
every route, bounces and suppression, content rules, acknowledgements, and never twice."""
from __future__ import annotations

import json
import re
import signal
import time
from datetime import datetime

import pytest

from devtools.reference_erp import ReferenceErp
from fake_genesys import FakeGenesys
from kafka_harness import create_topics, read_json, rewind
from test_billing import billable, produce

pytestmark = pytest.mark.kafka

ADDR = {"line1": "1 Main St", "city": "Springfield", "region": "IL", "postalCode": "62701", "country": "US"}
NO_EMAIL = {"transactionalEmail": False, "marketingEmail": False, "sms": True, "postal": True}


def cust(cid: str, **kw) -> dict:
    base = {"customerId": cid, "name": "Jane Doe", "timezone": "America/Chicago", "currency": "USD",
            "postalAddress": ADDR}
    base.update(kw)
    return base


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


def genesys_env(g: FakeGenesys) -> dict[str, str]:
    return {"CALLBILL_GENESYS_CLIENT_ID": g.client_id, "CALLBILL_GENESYS_CLIENT_SECRET": g.client_secret,
            "CALLBILL_GENESYS_API_URL": g.api_url, "CALLBILL_GENESYS_LOGIN_URL": g.login_url,
            "CALLBILL_SMS_FROM": "+13125550199", "CALLBILL_RECONCILE_HOURS": "0"}


def by_iid(records: list[dict]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for r in records:
        out.setdefault(r["interactionId"], []).append(r)
    return out


def wait_for(fn, timeout: float = 60, every: float = 0.5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = fn()
        if value:
            return value
        time.sleep(every)
    return fn()


@pytest.fixture
def genesys():
    g = FakeGenesys().start()
    yield g
    g.stop()


def test_every_route_content_and_bounce_suppression(make_worker, kafka_bootstrap, mail_sink, genesys):
    mail_sink.handler.reject = re.compile(r"@dead\.example$", re.IGNORECASE)
    w = make_worker(partitions=2, extra_env=genesys_env(genesys))
    w.extra_env["CALLBILL_PUBLIC_URL"] = w.url
    create_topics(kafka_bootstrap, w.prefix, w.partitions)
    produce(kafka_bootstrap, w.topic("crm.customers"), [(c["customerId"], c) for c in ROUTE_CUSTOMERS])
    produce(kafka_bootstrap, w.topic("callbill.suppressions"), [("suppressed@example.com", {
        "address": "suppressed@example.com", "reason": "hard", "status": "5.1.1", "source": "dsn",
        "time": "2026-11-01T00:00:00Z"})])
    w.start()
    ids = {c["customerId"]: f"r-{c['customerId'].lower()}" for c in ROUTE_CUSTOMERS if c["customerId"] != "C-DEAD2"}
    produce(kafka_bootstrap, w.topic("callbill.billable"), [(iid, billable(iid, cid)) for cid, iid in ids.items()])

    reviews = by_iid(read_json(kafka_bootstrap, w.topic("callbill.review"), timeout=90,
                               until=lambda m: len({r["interactionId"] for r in m}) >= 4))
    deliveries = by_iid(read_json(kafka_bootstrap, w.topic("callbill.deliveries"), timeout=60,
                                  until=lambda m: len({r["interactionId"] for r in m}) >= 3))
    assert reviews[ids["C-SUPP"]][0]["reason"] == "PENDING_REVIEW:EMAIL_SUPPRESSED"
    assert reviews[ids["C-INVALID"]][0]["reason"] == "PENDING_REVIEW:EMAIL_INVALID"
    assert reviews[ids["C-NONE"]][0]["reason"] == "NO_DELIVERY_CHANNEL"
    assert "sms: not allowed" in reviews[ids["C-NONE"]][0]["detail"]
    assert reviews[ids["C-DEAD"]][0]["reason"] == "PENDING_REVIEW:BOUNCED"
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
    assert "USD " in text and "/files/invoices/" in text and "valid until" in text and "CST" in text
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
    jobs = read_json(kafka_bootstrap, w.topic("callbill.postal"), timeout=10, until=lambda m: len(m) >= 1)
    assert len(jobs) == 1
    assert jobs[0]["recipient"]["lines"] == ["1 Main St", "62701 Springfield, IL", "US"]
    assert jobs[0]["documentKey"].startswith("invoices/") and post["providerId"].endswith("/0")

    # the hard bounce suppressed the address: the next invoice to it is not sent
    supp = read_json(kafka_bootstrap, w.topic("callbill.suppressions"), timeout=10,
                     until=lambda m: any(s["address"] == "gone@dead.example" for s in m))
    assert any(s["address"] == "gone@dead.example" and s["reason"] == "hard" for s in supp)
    produce(kafka_bootstrap, w.topic("callbill.billable"), [("r-c-dead2", billable("r-c-dead2", "C-DEAD2"))])
    later = by_iid(read_json(kafka_bootstrap, w.topic("callbill.review"), timeout=60,
                             until=lambda m: any(r["interactionId"] == "r-c-dead2" for r in m)))
    assert later["r-c-dead2"][0]["reason"] == "PENDING_REVIEW:EMAIL_SUPPRESSED"
    assert mail_sink.connections >= 1 and len(mail_sink.messages()) == 1

    # a replay of the documents topic sends nothing a second time
    docs = read_json(kafka_bootstrap, w.topic("callbill.documents"), timeout=10)
    produce(kafka_bootstrap, w.topic("callbill.documents"), [(d["interactionId"], d) for d in docs])
    audit = read_json(kafka_bootstrap, w.topic("callbill.audit"), timeout=60,
                      until=lambda m: sum(a["outcome"] == "ALREADY_DELIVERED" for a in m) >= 3)
    assert sum(a["outcome"] == "ALREADY_DELIVERED" for a in audit) >= 3
    assert len(mail_sink.messages()) == 1 and len(genesys.messages) == 1
    assert len(read_json(kafka_bootstrap, w.topic("callbill.postal"), timeout=3)) == 1


def test_dsn_soft_and_provider_bounces(make_worker, kafka_bootstrap, mail_sink, tmp_path):
    """A DSN from the bounce mailbox (hard); soft bounces (DSN 4.2.2, RCPT 450) retried up to
    the limit, then suppressed; an SES complaint through the provider endpoint."""
    h = mail_sink.handler
    h.bounce, h.soft_bounce, h.defer = re.compile(r"@later\.example$"), re.compile(r"^full@"), re.compile(r"^busy@")
    bounce_dir = tmp_path / "bounces"
    h.bounce_dir = bounce_dir
    bounce_dir.mkdir()
    w = make_worker(partitions=2, extra_env={
        "CALLBILL_BOUNCE_MAILDIR": str(bounce_dir), "CALLBILL_BOUNCE_POLL_INTERVAL": "0.5",
        "CALLBILL_SOFT_BOUNCE_LIMIT": "2", "CALLBILL_RETRY_BASE_DELAY": "0.5", "CALLBILL_RETRY_MAX_DELAY": "1",
        "CALLBILL_DELIVERY_ATTEMPTS": "2", "CALLBILL_ERP_BACKOFF_BASE": "0.05"})
    create_topics(kafka_bootstrap, w.prefix, w.partitions)
    produce(kafka_bootstrap, w.topic("crm.customers"), [
        ("C-LATER", cust("C-LATER", email="user@later.example")), ("C-OK", cust("C-OK", email="ok@example.com")),
        ("C-FULL", cust("C-FULL", email="full@example.com")), ("C-BUSY", cust("C-BUSY", email="busy@example.com"))])
    w.start()
    produce(kafka_bootstrap, w.topic("callbill.billable"), [
        ("b-later", billable("b-later", "C-LATER")), ("b-ok", billable("b-ok", "C-OK")),
        ("b-full", billable("b-full", "C-FULL")), ("b-busy", billable("b-busy", "C-BUSY"))])
    wanted = {"b-later", "b-full", "b-busy"}
    reviews = by_iid(read_json(kafka_bootstrap, w.topic("callbill.review"), timeout=90,
                               until=lambda m: {r["interactionId"] for r in m} >= wanted))
    assert {k: [r["reason"] for r in v] for k, v in reviews.items()} == {
        k: ["PENDING_REVIEW:BOUNCED"] for k in wanted}
    assert len(list((bounce_dir / "processed").iterdir())) == 3  # one hard DSN, two soft ones
    mails = [str(m["To"]) for m in mail_sink.messages()]
    # the soft-bounced invoice was sent again once, then the limit was reached
    assert sorted(mails) == ["full@example.com", "full@example.com", "ok@example.com", "user@later.example"]
    supp = read_json(kafka_bootstrap, w.topic("callbill.suppressions"), timeout=30, until=lambda m: len(m) >= 3)
    assert {(s["address"], s["reason"]) for s in supp} == {
        ("user@later.example", "hard"), ("full@example.com", "soft-limit"), ("busy@example.com", "soft-limit")}

    ses = {"notificationType": "Complaint", "complaint": {"complainedRecipients": [{"emailAddress": "ok@example.com"}],
                                                          "complaintFeedbackType": "abuse"},
           "mail": {"commonHeaders": {"messageId": "<b-ok.invoice@callbill.example>"}}}
    assert w.post(ses, "/bounces/provider", signed=False).status_code == 401
    r = w.post({"Type": "Notification", "Message": json.dumps(ses)}, "/bounces/provider")
    assert r.status_code == 202 and r.json() == {"accepted": 1}
    bad = w.post({"nonsense": True}, "/bounces/provider")
    assert bad.status_code == 422 and "ok@example.com" not in bad.text
    supp = read_json(kafka_bootstrap, w.topic("callbill.suppressions"), timeout=30,
                     until=lambda m: any(s["address"] == "ok@example.com" for s in m))
    assert ("ok@example.com", "complaint") in {(s["address"], s["reason"]) for s in supp}
    reviews = by_iid(read_json(kafka_bootstrap, w.topic("callbill.review"), timeout=30,
                               until=lambda m: any(r["interactionId"] == "b-ok" for r in m)))
    assert [r["reason"] for r in reviews["b-ok"]] == ["PENDING_REVIEW:BOUNCED"]


def test_acknowledgement_only_when_the_invoice_is_late(make_worker, kafka_bootstrap, mail_sink):
    erp = ReferenceErp(token="erp-token").start()
    try:
        w = make_worker(partitions=2, extra_env={
            "CALLBILL_ERP_URL": erp.url, "CALLBILL_ERP_TOKEN": "erp-token", "CALLBILL_ACK_AFTER_SECONDS": "6",
            "CALLBILL_RETRY_BASE_DELAY": "0.5", "CALLBILL_RETRY_MAX_DELAY": "2"})
        create_topics(kafka_bootstrap, w.prefix, w.partitions)
        produce(kafka_bootstrap, w.topic("crm.customers"), [
            ("C-A", cust("C-A", email="a@example.com")), ("C-B", cust("C-B", email="b@example.com"))])
        w.start()
        erp.behaviour.fail_keys = {"ack-late"}
        t0 = time.time()
        for iid, c in (("ack-fast", "C-B"), ("ack-late", "C-A")):
            assert w.post({"interactionId": iid, "customerId": c, "timestamp": "2026-11-24T22:15:00Z",
                           "durationSeconds": 300, "serviceType": "Consultation",
                           "billingCode": "Billable Service"}).status_code == 202
        time.sleep(12)
        erp.behaviour.fail_keys = set()
        deliveries = by_iid(read_json(kafka_bootstrap, w.topic("callbill.deliveries"), timeout=60,
                                      until=lambda m: len(m) >= 3))
    finally:
        erp.stop()
    assert [d["kind"] for d in deliveries["ack-fast"]] == ["invoice"]
    assert sorted(d["kind"] for d in deliveries["ack-late"]) == ["ack", "invoice"]
    ack = next(d for d in deliveries["ack-late"] if d["kind"] == "ack")
    invoice = next(d for d in deliveries["ack-late"] if d["kind"] == "invoice")
    ack_at = datetime.fromisoformat(ack["time"]).timestamp()
    assert 5 <= ack_at - t0 < 20 and ack_at < datetime.fromisoformat(invoice["time"]).timestamp()
    subjects = sorted(str(m["Subject"]) for m in mail_sink.messages() if m["To"] == "a@example.com")
    assert len(subjects) == 2 and subjects[0] == "We are preparing your invoice"
    assert len([m for m in mail_sink.messages() if m["To"] == "b@example.com"]) == 1
    time.sleep(2)
    assert len(mail_sink.messages()) == 3  # and never a second acknowledgement


def test_the_dns_check_sends_an_undeliverable_domain_to_review(make_worker, kafka_bootstrap, mail_sink):
    """CALLBILL_EMAIL_DNS_CHECK through a real DNS server on loopback: a domain with an MX is
    mailed, one that does not exist is not tried and goes to review (edge case 3)."""
    from dns_server import ZONES, LocalDns

    with LocalDns(ZONES) as dns:
        w = make_worker(partitions=1, extra_env={"CALLBILL_EMAIL_DNS_CHECK": "true",
                                                 "CALLBILL_EMAIL_DNS_SERVERS": dns.address})
        create_topics(kafka_bootstrap, w.prefix, w.partitions)
        produce(kafka_bootstrap, w.topic("crm.customers"), [
            ("C-MX", cust("C-MX", email="jane@callbill-ok.com")),
            ("C-NX", cust("C-NX", email="jane@callbill-dead.com"))])
        w.start()
        produce(kafka_bootstrap, w.topic("callbill.billable"),
                [("dns-ok", billable("dns-ok", "C-MX")), ("dns-dead", billable("dns-dead", "C-NX"))])
        reviews = read_json(kafka_bootstrap, w.topic("callbill.review"), timeout=60,
                            until=lambda m: any(r["interactionId"] == "dns-dead" for r in m))
        assert wait_for(lambda: len(mail_sink.messages()) == 1, 60)
        asked = dict(dns.resolver.asked)
    assert [m["To"] for m in mail_sink.messages()] == ["jane@callbill-ok.com"]
    assert [(r["interactionId"], r["reason"]) for r in reviews] == [("dns-dead", "PENDING_REVIEW:EMAIL_UNDELIVERABLE")]
    assert "callbill-dead.com" not in json.dumps(reviews)  # the reason, not the address
    assert asked[("callbill-ok.com", "MX")] == 1 and asked[("callbill-dead.com", "MX")] == 1


def test_an_acknowledgement_past_its_deadline_is_given_up(make_worker, kafka_bootstrap, mail_sink):
    """The invoice is late (ERP failing) and the SMTP server is busy past the ack's deadline:
    no acknowledgement later than CALLBILL_ACK_DEADLINE_SECONDS after intake, ever; the
    invoice itself still goes out once the ERP and SMTP recover."""
    erp = ReferenceErp(token="erp-token").start()
    try:
        w = make_worker(partitions=1, extra_env={
            "CALLBILL_ERP_URL": erp.url, "CALLBILL_ERP_TOKEN": "erp-token", "CALLBILL_ACK_AFTER_SECONDS": "3",
            "CALLBILL_ACK_DEADLINE_SECONDS": "6", "CALLBILL_RETRY_BASE_DELAY": "0.5", "CALLBILL_RETRY_MAX_DELAY": "2"})
        create_topics(kafka_bootstrap, w.prefix, w.partitions)
        produce(kafka_bootstrap, w.topic("crm.customers"), [("C-L", cust("C-L", email="late@example.com"))])
        w.start()
        erp.behaviour.fail_keys = {"ack-stale"}
        mail_sink.handler.busy(15)  # every MAIL answered 421 for 15 s
        assert w.post({"interactionId": "ack-stale", "customerId": "C-L", "timestamp": "2026-11-24T22:15:00Z",
                       "durationSeconds": 300, "serviceType": "Consultation",
                       "billingCode": "Billable Service"}).status_code == 202
        audit = read_json(kafka_bootstrap, w.topic("callbill.audit"), timeout=40,
                          until=lambda m: any(a["stage"] == "ack" for a in m))
        erp.behaviour.fail_keys = set()
        deliveries = read_json(kafka_bootstrap, w.topic("callbill.deliveries"), timeout=60,
                               until=lambda m: any(d["kind"] == "invoice" for d in m))
    finally:
        erp.stop()
    ack = [(a["outcome"], a.get("reason")) for a in audit if a["stage"] == "ack"]
    assert ack and ack[0][0] in ("ACK_FAILED", "ACK_SKIPPED"), ack
    assert [d["kind"] for d in deliveries] == ["invoice"]
    time.sleep(2)
    assert [str(m["Subject"]) for m in mail_sink.messages()] != [] and all(
        "preparing" not in str(m["Subject"]) for m in mail_sink.messages())


def test_worker_killed_mid_send_sends_no_second_email(make_worker, kafka_bootstrap, mail_sink):
    """The SMTP server holds its answer to DATA; the worker dies with intents written and
    outcomes missing. The restarted worker must not mail those invoices again.

    The client's timeout is longer than the server's hold, so the only thing that ends
    those sends is the kill (with equal times, a send could time out first and be reviewed
    by the first worker: a race, not the case under test)."""
    w = make_worker(partitions=2, extra_env={"CALLBILL_SMTP_TIMEOUT": "120"})
    create_topics(kafka_bootstrap, w.prefix, w.partitions)
    produce(kafka_bootstrap, w.topic("crm.customers"), [("C-K", cust("C-K", email="k@example.com"))])
    w.start()
    produce(kafka_bootstrap, w.topic("callbill.billable"), [("k-warm", billable("k-warm", "C-K"))])
    assert wait_for(lambda: len(mail_sink.messages()) == 1, 60)
    mail_sink.handler.data_delay = 30
    produce(kafka_bootstrap, w.topic("callbill.billable"), [(f"k-{i}", billable(f"k-{i}", "C-K")) for i in range(6)])
    # sends under way, answers held (the first delivery batch may hold one invoice or several)
    assert wait_for(lambda: len(mail_sink.messages()) >= 2, 60, 0.1)
    time.sleep(0.5)
    w.stop(signal.SIGKILL)
    mail_sink.handler.data_delay = 0
    w2 = make_worker(partitions=2, app_id=w.app_id, extra_env={"CALLBILL_SMTP_TIMEOUT": "120"})
    w2.start()
    produce(kafka_bootstrap, w.topic("callbill.billable"), [("k-after", billable("k-after", "C-K"))])
    deliveries = by_iid([d for d in read_json(kafka_bootstrap, w.topic("callbill.deliveries"), timeout=90,
                                              until=lambda m: any(d["interactionId"] == "k-after" for d in m))
                         if d["kind"] == "invoice"])
    settled = {f"k-{i}" for i in range(6)} - set(deliveries)
    reviews = by_iid(read_json(kafka_bootstrap, w.topic("callbill.review"), timeout=60,
                               until=lambda m: {r["interactionId"] for r in m} >= settled))
    # the queue (callbill.reviews, one record per interaction, last one wins)
    queue: dict[str, dict] = {}
    for r in read_json(kafka_bootstrap, w.topic("callbill.reviews"), timeout=60,
                       until=lambda m: {r["interactionId"] for r in m} >= settled):
        queue[r["interactionId"]] = r
    time.sleep(1)
    per_invoice: dict[str, int] = {}
    for m in mail_sink.messages():
        per_invoice[m["Message-ID"]] = per_invoice.get(m["Message-ID"], 0) + 1
    assert max(per_invoice.values()) == 1, per_invoice  # never twice
    for i in range(6):
        iid = f"k-{i}"
        delivered = iid in deliveries
        # A review may be announced more than once (a kill between the review record and the
        # ledger write repeats the decision); the queue keeps one open item for it.
        unconfirmed = {r["reason"] for r in reviews.get(iid, [])} == {"DELIVERY_UNCONFIRMED"}
        assert delivered != unconfirmed, (iid, deliveries.get(iid), reviews.get(iid))
        if unconfirmed:
            assert (queue[iid]["status"], queue[iid]["reason"]) == ("OPEN", "DELIVERY_UNCONFIRMED"), queue[iid]
        else:
            # one delivery; its record may be written again by a redelivery after the kill
            same = {(d["messageId"], d["attempt"], d["providerId"]) for d in deliveries[iid]}
            assert len(same) == 1 and iid not in queue, (deliveries[iid], queue.get(iid))
    assert sum(1 for i in range(6) if f"k-{i}" in reviews) >= 1
    # only sends holding one of the 4 SMTP connections had begun: the invoices still waiting
    # for a connection had no intent, and the restarted worker simply sent them
    assert sum(1 for i in range(6) if f"k-{i}" in deliveries) >= 2, (
        sorted(deliveries), {k: [r.get("detail") for r in v] for k, v in reviews.items()})
    assert "k-after" in deliveries and "k-warm" in deliveries


def test_genesys_email_and_a_crm_update_used_for_the_next_invoice(make_worker, kafka_bootstrap, genesys, tmp_path):
    """Customers come from `callbill customers import` (CSV); email goes through the Genesys
    agentless email API; a changed address in the CRM is used for the next invoice."""
    import subprocess
    import sys

    from kafka_harness import REPO

    w = make_worker(partitions=2, extra_env={**genesys_env(genesys), "CALLBILL_EMAIL_TRANSPORT": "genesys"})
    create_topics(kafka_bootstrap, w.prefix, w.partitions)
    header = "customerId,name,email,phone,timezone,currency,address_line1,address_city,address_country\n"
    csv = tmp_path / "crm.csv"

    def import_(email: str, extra: str = "") -> subprocess.CompletedProcess:
        csv.write_text(header + f"C-G,Jane Doe,{email},,America/Chicago,USD,1 Main St,Springfield,US\n" + extra)
        return subprocess.run([sys.executable, "-m", "app.cli", "customers", "import", str(csv)], cwd=REPO,
                              env=w.env(), capture_output=True, text=True, timeout=60)

    first = import_("old@example.com", "C-BAD,Bad Row,not-an-email,,Mars/Olympus,usd,,,\n")
    assert first.returncode == 1, first.stdout + first.stderr
    assert "imported 1 customers, rejected 1 rows" in first.stdout and "line 3" in first.stdout
    assert "not-an-email" not in first.stdout and "Olympus" not in first.stdout
    w.start()

    def post(iid: str) -> None:
        assert w.post({"interactionId": iid, "customerId": "C-G", "timestamp": "2026-11-24T22:15:00Z",
                       "durationSeconds": 300, "serviceType": "Consultation",
                       "billingCode": "Billable Service"}).status_code == 202

    post("g-1")
    assert wait_for(lambda: len(genesys.emails) == 1, 60)
    second = import_("new@example.com")
    assert second.returncode == 0, second.stdout + second.stderr
    time.sleep(2)  # the worker follows crm.customers
    post("g-2")
    assert wait_for(lambda: len(genesys.emails) == 2, 60)
    assert [e["toAddresses"][0]["email"] for e in genesys.emails] == ["old@example.com", "new@example.com"]
    e = genesys.emails[0]
    assert e["senderType"] == "Outbound" and e["subject"].startswith("Your invoice ") and "Jane" not in e["subject"]
    assert "/link?token=" in e["htmlBody"] and "valid until" in e["textBody"]
    deliveries = read_json(kafka_bootstrap, w.topic("callbill.deliveries"), timeout=30, until=lambda m: len(m) >= 2)
    assert {d["transport"] for d in deliveries} == {"genesys"}
    # the provider's conversation id is the reference; no Message-ID of ours was ever sent
    assert all(d["providerId"] and d.get("messageId") is None for d in deliveries), deliveries


def test_a_document_read_again_after_a_crash_announces_its_delivery_again_and_mails_nothing(
        make_worker, kafka_bootstrap, mail_sink):
    """A kill after the ledger had the outcome but before the delivery record and its audit
    landed (the chaos run found one): the document is read again from the same offset, since
    its batch was never committed. The record and the audit are written again; no second email."""
    w = make_worker(partitions=1)
    create_topics(kafka_bootstrap, w.prefix, w.partitions)
    produce(kafka_bootstrap, w.topic("crm.customers"), [("C-R", cust("C-R", email="r@example.com"))])
    w.start()
    produce(kafka_bootstrap, w.topic("callbill.billable"), [("r-1", billable("r-1", "C-R"))])
    first = read_json(kafka_bootstrap, w.topic("callbill.deliveries"), timeout=60, until=lambda m: len(m) >= 1)
    assert len(first) == 1 and wait_for(lambda: len(mail_sink.messages()) == 1, 30)
    w.stop()

    rewind(kafka_bootstrap, w.app_id, [w.topic("callbill.documents")])
    w.start()
    again = read_json(kafka_bootstrap, w.topic("callbill.deliveries"), timeout=60, until=lambda m: len(m) >= 2)
    assert again == [first[0], first[0]]  # the same record, written again from the ledger
    audit = read_json(kafka_bootstrap, w.topic("callbill.audit"), timeout=30,
                      until=lambda m: any("republished" in (a.get("reason") or "") for a in m))
    told = [a for a in audit if a["interactionId"] == "r-1" and a["stage"] == "delivery"]
    # (the documents stage may also publish the document again: a new message, ALREADY_DELIVERED)
    assert [a["outcome"] for a in told if a["outcome"] != "ALREADY_DELIVERED"] == ["DELIVERED", "DELIVERED"], told
    assert "republished after a restart" in told[1]["reason"]
    time.sleep(2)
    assert len(mail_sink.messages()) == 1  # never mailed twice
    assert len(read_json(kafka_bootstrap, w.topic("callbill.deliveries"), timeout=5)) == 2


def test_every_stage_read_again_after_a_later_stages_review_keeps_the_review_and_issues_nothing_new(
        make_worker, kafka_bootstrap, mail_sink):
    """A kill leaves each stage's last batch uncommitted, though the ledger has moved on (a
    chaos run lost intake's FORWARDED this way: read again, it was taken for a duplicate).
    Here delivery had put the interaction in review; then intake, billing and documents
    read their messages again and billing gets a replayed copy. Each audits its decision
    again; there is no second invoice or render, and the ledger stays in review."""
    import httpx

    admin = {"Authorization": "Bearer again-admin", "X-Callbill-Actor": "olga"}
    w = make_worker(partitions=1, extra_env={"CALLBILL_ADMIN_TOKEN": "again-admin"})
    create_topics(kafka_bootstrap, w.prefix, w.partitions)
    # postal only, and no postal address: delivery sends it to review (no route)
    produce(kafka_bootstrap, w.topic("crm.customers"), [("C-NR", cust(
        "C-NR", email="nr@example.com", postalAddress=None,
        preferences={"transactionalEmail": False, "sms": False, "postal": True}))])
    w.start()
    interaction = billable("nr-1", "C-NR")
    produce(kafka_bootstrap, w.topic("callbill.interactions"), [("nr-1", interaction)])
    read_json(kafka_bootstrap, w.topic("callbill.review"), timeout=90,
              until=lambda m: any(r["stage"] == "delivery" for r in m))
    w.stop()

    rewind(kafka_bootstrap, w.app_id, [w.topic(t) for t in ("callbill.interactions", "callbill.billable",
                                                            "callbill.invoices")])
    produce(kafka_bootstrap, w.topic("callbill.billable"), [("nr-1", interaction)])  # a replay: a new message
    w.start()

    def told(m: list[dict]) -> dict[str, list[tuple[str, str]]]:
        out: dict[str, list[tuple[str, str]]] = {}
        for a in m:
            if a["interactionId"] == "nr-1":
                out.setdefault(a["stage"], []).append((a["outcome"], a.get("reason") or ""))
        return out

    audit = told(read_json(kafka_bootstrap, w.topic("callbill.audit"), timeout=90, until=lambda m: (
        len(told(m).get("intake", [])) >= 2 and len(told(m).get("billing", [])) >= 3
        and len(told(m).get("documents", [])) >= 2)))
    assert [o for o, _ in audit["intake"]] == ["FORWARDED", "FORWARDED"], audit
    assert "read again" in audit["intake"][1][1]
    assert sorted(o for o, _ in audit["billing"]) == ["ALREADY_BILLED", "BILLED", "BILLED"], audit
    assert [o for o, r in audit["documents"] if o == "DOCUMENTED" and "republished" not in r] == ["DOCUMENTED"], audit
    time.sleep(3)
    numbers = {i["invoiceNumber"] for i in read_json(kafka_bootstrap, w.topic("callbill.invoices"), timeout=5)}
    assert len(numbers) == 1  # one invoice, published again
    billable_msgs = read_json(kafka_bootstrap, w.topic("callbill.billable"), timeout=5)
    assert len(billable_msgs) == 2  # the first forward and the replay: intake sent nothing again
    r = httpx.get(w.url + "/api/review/nr-1", headers=admin, timeout=30)
    assert r.status_code == 200 and r.json()["ledger"]["state"] == "REVIEW", r.text
    assert r.json()["item"]["stage"] == "delivery"
    assert mail_sink.messages() == []


def test_an_unconfirmed_send_read_again_announces_its_review_again_and_mails_nothing(
        make_worker, kafka_bootstrap, mail_sink):
    """The SMTP answer to DATA never comes in time: DELIVERY_UNCONFIRMED. A kill before its
    review landed would leave the document to be read again with the ledger already in
    review; that read must announce the review again (before, it wrote nothing)."""
    mail_sink.handler.data_delay = 6
    w = make_worker(partitions=1, extra_env={"CALLBILL_SMTP_TIMEOUT": "2"})
    create_topics(kafka_bootstrap, w.prefix, w.partitions)
    produce(kafka_bootstrap, w.topic("crm.customers"), [("C-U", cust("C-U", email="u@example.com"))])
    w.start()
    produce(kafka_bootstrap, w.topic("callbill.billable"), [("u-1", billable("u-1", "C-U"))])
    first = read_json(kafka_bootstrap, w.topic("callbill.review"), timeout=90,
                      until=lambda m: any(r["reason"] == "DELIVERY_UNCONFIRMED" for r in m))
    assert [r["reason"] for r in first] == ["DELIVERY_UNCONFIRMED"]
    w.stop()
    mail_sink.handler.data_delay = 0
    mailed = len(mail_sink.messages())  # the held message may have arrived after all

    rewind(kafka_bootstrap, w.app_id, [w.topic("callbill.documents")])
    w.start()
    again = read_json(kafka_bootstrap, w.topic("callbill.review"), timeout=60, until=lambda m: len(m) >= 2)
    assert [(r["stage"], r["reason"]) for r in again] == [("delivery", "DELIVERY_UNCONFIRMED")] * 2
    audit = read_json(kafka_bootstrap, w.topic("callbill.audit"), timeout=30,
                      until=lambda m: sum(a["stage"] == "delivery" for a in m) >= 2)
    assert [a["outcome"] for a in audit if a["stage"] == "delivery"] == ["REVIEW", "REVIEW"]
    time.sleep(2)
    assert len(mail_sink.messages()) == mailed <= 1  # never sent again
