"""Delivery through a real broker, a real SMTP server (aiosmtpd) and the fake Genesys API:
what needs Kafka. A worker killed mid-send and restarted from its changelog never mails
twice; customers imported with the CLI onto crm.customers are followed live.

Every route, content rule, bounce, acknowledgement and read-again rule is decided in
process, in tests/stages/test_delivery_paths.py."""
from __future__ import annotations

import signal
import time

import pytest

from fake_genesys import FakeGenesys
from kafka_harness import create_topics, read_json
from test_billing import billable, produce

pytestmark = pytest.mark.kafka

ADDR = {"line1": "1 Main St", "city": "Springfield", "region": "IL", "postalCode": "62701", "country": "US"}


def cust(cid: str, **kw) -> dict:
    base = {"customerId": cid, "name": "Jane Doe", "timezone": "America/Chicago", "currency": "USD",
            "postalAddress": ADDR}
    base.update(kw)
    return base


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


def test_customers_get_their_invoices_in_their_own_language_through_a_real_worker(make_worker, kafka_bootstrap,
                                                                                   mail_sink):
    """Issue 18 on the broker: the locale from the directory, through billing, the render process,
    storage and SMTP; and a malformed VAT number reviewed, never a zero-rated invoice."""
    w = make_worker(partitions=2, extra_env={"CALLBILL_SELLER_COUNTRY": "DE", "CALLBILL_SELLER_TAX_ID": "DE136695976"})
    create_topics(kafka_bootstrap, w.prefix, w.partitions)
    at = {"line1": "Ring 2", "city": "Wien", "postalCode": "1010", "country": "AT"}
    produce(kafka_bootstrap, w.topic("crm.customers"), [
        ("C-DE", cust("C-DE", name="Alpen GmbH", email="de@example.com", locale="de-AT", currency="EUR",
                      timezone="Europe/Vienna", taxId="ATU13585627", postalAddress=at)),
        ("C-JA", cust("C-JA", name="山田太郎", email="ja@example.com", locale="ja-JP", currency="JPY",
                      timezone="Asia/Tokyo", postalAddress={"line1": "丸の内1-1", "country": "JP"})),
        ("C-BAD", cust("C-BAD", email="bad@example.com", locale="de", currency="EUR", taxId="ATU1358562",
                       postalAddress=at))])
    w.start()
    produce(kafka_bootstrap, w.topic("callbill.billable"),
            [(iid, billable(iid, c)) for iid, c in (("l-de", "C-DE"), ("l-ja", "C-JA"), ("l-bad", "C-BAD"))])
    assert wait_for(lambda: len(mail_sink.messages()) == 2, 90)
    mails = {str(m["To"]): m for m in mail_sink.messages()}
    de, ja = mails["de@example.com"], mails["ja@example.com"]
    assert str(de["Subject"]).startswith("Ihre Rechnung ") and str(ja["Subject"]).endswith(" のご案内")
    de_body = de.get_body(("plain",)).get_content()
    assert "Guten Tag Alpen GmbH," in de_body and "€" in de_body
    assert "ご請求金額" in ja.get_body(("plain",)).get_content()
    invoices = {i["interactionId"]: i for i in read_json(kafka_bootstrap, w.topic("callbill.invoices"), timeout=30,
                                                          until=lambda m: len(m) >= 2)}
    assert invoices["l-de"]["reverseCharge"] and invoices["l-de"]["buyerTaxId"] == "ATU13585627"
    assert invoices["l-de"]["locale"] == "de-AT" and invoices["l-ja"]["locale"] == "ja-JP"
    assert "l-bad" not in invoices
    reviews = read_json(kafka_bootstrap, w.topic("callbill.review"), timeout=30,
                        until=lambda m: any(r["interactionId"] == "l-bad" for r in m))
    assert [r["reason"] for r in reviews if r["interactionId"] == "l-bad"] == ["INVALID_VAT_ID"]
