"""Credit notes on a real broker: `callbill credit` and the API against a running worker, the
note rendered, stored and mailed once, the same key after a `kill -9` still one credit note,
and `callbill trace` showing the invoice's credited state."""
from __future__ import annotations

import signal
from email.header import decode_header, make_header

import httpx
import pytest

from kafka_harness import read_json
from operator_accounts import PASSWORD
from test_billing import produce
from test_delivery import cust, wait_for
from test_operations import bearer, cli, interaction, start

pytestmark = pytest.mark.kafka


def subjects(mail_sink) -> list[str]:
    return sorted(str(make_header(decode_header(m["Subject"]))) for m in mail_sink.messages())


def test_credit_notes_from_the_command_and_the_api_exactly_once_across_a_kill(make_worker, kafka_bootstrap, mail_sink):
    w = start(make_worker, kafka_bootstrap, [cust("C-CN", email="cn@example.com")])
    produce(kafka_bootstrap, w.topic("callbill.interactions"), [(i, interaction(i, customer="C-CN"))
                                                                 for i in ("cn-a", "cn-b")])
    assert wait_for(lambda: len(mail_sink.messages()) == 2, 90)
    invoices = {i["interactionId"]: i for i in read_json(kafka_bootstrap, w.topic("callbill.invoices"),
                                                          until=lambda o: len(o) >= 2, timeout=30)}
    a, b = invoices["cn-a"], invoices["cn-b"]

    # the command finds the interaction from the number (the worker holds its claim), prints the key
    r = cli(w, "credit", a["invoiceNumber"], "--reason", "Disputed call", "--amount", "5.00")
    assert r.returncode == 0, r.stdout + r.stderr
    key = r.stdout.split("idempotency key: ", 1)[1].split()[0]
    first = r.stdout.split("credit note ", 1)[1].split()[0]
    assert first.startswith("CN0") and first.endswith("-000001") and "already" not in r.stdout

    # the API, operator role: the rest of the invoice; a viewer may not; more than is left is refused
    ask = {"interactionId": "cn-a", "invoiceNumber": a["invoiceNumber"], "reason": "Goodwill: the rest"}
    assert httpx.post(w.url + "/api/credits", json=ask, headers=bearer("dash"), timeout=30).status_code == 403
    rest = httpx.post(w.url + "/api/credits", json=ask, headers=bearer("olga-api"), timeout=60)
    assert rest.status_code == 201, rest.text
    assert rest.json()["creditNumber"].endswith("-000002") and rest.json()["creditedTotal"] == a["total"]
    over = httpx.post(w.url + "/api/credits", json={**ask, "reason": "again", "amount": "1.00"},
                      headers=bearer("olga-api"), timeout=60)
    assert (over.status_code, over.json()["reason"]) == (422, "ALREADY_CREDITED")
    bad = httpx.post(w.url + "/api/credits", json={"invoiceNumber": "INV99-000001", "reason": "x"},
                     headers=bearer("olga-api"), timeout=30)
    assert bad.status_code == 404
    want = sorted([f"Your invoice {a['invoiceNumber']}", f"Your invoice {b['invoiceNumber']}",
                   f"Your credit note {first}", f"Your credit note {rest.json()['creditNumber']}"])
    assert wait_for(lambda: subjects(mail_sink) == want, 90), subjects(mail_sink)

    # a kill -9, a new worker: the same command (same key) is the same credit note, nothing is mailed again
    w.stop(signal.SIGKILL)
    w.start()
    again = cli(w, "credit", a["invoiceNumber"], "--reason", "Disputed call", "--amount", "5.00", "--key", key,
                "--interaction", "cn-a")
    assert again.returncode == 0, again.stdout + again.stderr
    assert f"credit note {first} " in again.stdout and "already issued for this key" in again.stdout
    # the review pages: an operator signed in issues one on the other invoice with the form
    with httpx.Client(base_url=w.url, timeout=60, follow_redirects=True) as browser:
        signed_in = browser.post("/review/login", data={"name": "rita", "password": PASSWORD})
        assert signed_in.status_code == 200 and "Issue a credit note" in signed_in.text
        form = browser.get("/credits", params={"invoiceNumber": b["invoiceNumber"]})
        assert form.status_code == 200 and f'value="{b["invoiceNumber"]}"' in form.text
        done = browser.post("/credits", data={"invoiceNumber": b["invoiceNumber"], "reason": "Wrong rate",
                                               "lines": "1"})
    assert done.status_code == 201 and "issued" in done.text, done.text
    other_number = done.text.split("credit note ", 1)[1].split()[0]
    other = cli(w, "credit", b["invoiceNumber"], "--reason", "Wrong rate, again", "--lines", "1")
    assert other.returncode == 1 and "ALREADY_CREDITED" in other.stderr, other.stdout + other.stderr

    t = cli(w, "trace", "cn-a")
    assert t.returncode == 0, t.stderr
    assert f"credited: {a['total']} USD of {a['total']} USD in 2 credit note(s)" in t.stdout, t.stdout
    assert f"credit note {first}: 5" in t.stdout and "DELIVERED" in t.stdout
    assert "credits    CREDITED" in t.stdout and "ISSUED" in t.stdout
    assert wait_for(lambda: len(mail_sink.messages()) == 5, 90)
    assert sum(s.startswith("Your credit note") for s in subjects(mail_sink)) == 3  # one per note, never twice
    notes = [i for i in read_json(kafka_bootstrap, w.topic("callbill.invoices"), timeout=5)
             if i.get("documentType") == "creditNote"]
    assert sorted({n["invoiceNumber"] for n in notes}) == sorted({first, rest.json()["creditNumber"], other_number})
    assert not read_json(kafka_bootstrap, w.topic("callbill.dlq"), timeout=2)
