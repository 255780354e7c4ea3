"""Operating callbill on a real broker: the review queue (API, CLI, a real browser), the
trace, replays, metrics, the stats page for verified principals only, and the logs' privacy."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time

import httpx
import pytest

from kafka_harness import REPO, create_topics, read_json
from operator_accounts import PASSWORD, operators_file
from test_billing import produce
from test_delivery import cust, wait_for

pytestmark = pytest.mark.kafka

ADMIN = "admin-token-for-tests"  # development's shared token: works, recorded as client:admin-token
TOKENS: dict[str, str] = {}  # client name -> token, made by start()
AUTH: dict[str, str] = {}  # the "olga-api" client (operator role); X-Callbill-Actor is ignored


def bearer(client: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS[client]}"}


def interaction(iid: str, customer: str | None = None, contact: str | None = None) -> dict:
    return {"interactionId": iid, "source": "webhook", "customerId": customer, "externalContactId": contact,
            "endedAt": "2026-11-24T22:15:00Z", "durationSeconds": 300, "serviceType": "Consultation",
            "wrapupCode": "Billable Service", "agentName": "Alex Agent"}


def cli(w, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {**w.env(), "CALLBILL_API_TOKEN": TOKENS["ben-cli"], "CALLBILL_WEB_PORT": str(w.port)}
    return subprocess.run([sys.executable, "-m", "app.cli", *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=timeout)


def items(w, **params) -> list[dict]:
    r = httpx.get(w.url + "/api/review", params=params, headers=AUTH, timeout=10)
    assert r.status_code == 200
    return r.json()["items"]


def metric(text: str, name: str, **labels) -> float | None:
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))  # the exposition sorts labels
    m = re.search(rf"^{name}{{{re.escape(want)}}} (\S+)$" if want else rf"^{name} (\S+)$", text, re.M)
    return float(m.group(1)) if m else None


def start(make_worker, kafka_bootstrap, customers, **env):
    w = make_worker(partitions=2, extra_env={"CALLBILL_ADMIN_TOKEN": ADMIN, "CALLBILL_WEB_STATS": "true", **env})
    path = w.tmp / f"{w.app_id}-operators.json"
    TOKENS.update(operators_file(path, {"rita": "operator", "vera": "viewer"},
                                 {"olga-api": "operator", "ben-cli": "operator", "dash": "viewer"}))
    AUTH.clear()
    AUTH.update({**bearer("olga-api"), "X-Callbill-Actor": "mallory"})
    w.extra_env["CALLBILL_OPERATORS_FILE"] = str(path)
    w.extra_env["CALLBILL_PUBLIC_URL"] = w.url
    create_topics(kafka_bootstrap, w.prefix, w.partitions)
    produce(kafka_bootstrap, w.topic("crm.customers"), [(c["customerId"], c) for c in customers])
    return w.start()


def test_review_api_cli_trace_metrics_and_private_logs(make_worker, kafka_bootstrap, mail_sink):
    w = start(make_worker, kafka_bootstrap, [cust("C-OK", email="ok@example.com", phone="+13125550100")])
    produce(kafka_bootstrap, w.topic("callbill.interactions"), [
        ("o-missing", interaction("o-missing", contact="ext-9")),  # intake: MISSING_CUSTOMER
        ("o-unknown", interaction("o-unknown", customer="C-GONE")),  # billing: UNKNOWN_CUSTOMER
        ("o-ok", interaction("o-ok", customer="C-OK"))])
    assert wait_for(lambda: len(items(w)) == 2, 60)

    # auth: nothing without the token, and nothing leaks in the 401
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Cookie": "callbill_session=" + "x" * 43}):
        r = httpx.get(w.url + "/api/review", headers=headers, timeout=10)
        assert r.status_code == 401 and r.json() == {"error": "unauthorized"} and "o-missing" not in r.text
        r = httpx.post(w.url + "/api/review/o-missing/dismiss", headers=headers, json={"note": "x"}, timeout=10)
        assert r.status_code == 401
    assert httpx.get(w.url + "/review", timeout=10, follow_redirects=False).status_code == 303
    # the stats page is enabled, and only for a verified principal; /table/ is not served at all
    assert httpx.get(w.url + "/", timeout=10).status_code == 401
    assert httpx.get(w.url + "/", headers=AUTH, timeout=10).status_code == 200
    assert httpx.get(w.url + "/", headers=bearer("dash"), timeout=10).status_code == 200
    # a viewer reads the queue but cannot act
    assert httpx.get(w.url + "/api/review", headers=bearer("dash"), timeout=10).status_code == 200
    r = httpx.post(w.url + "/api/review/o-unknown/dismiss", headers=bearer("dash"), json={"note": "x"}, timeout=10)
    assert r.status_code == 403 and "operator role" in r.json()["error"]
    assert httpx.get(w.url + "/table/ledger/", headers=AUTH, timeout=10).status_code == 404

    listed = {i["interactionId"]: i for i in items(w)}
    assert listed["o-missing"]["reason"] == "MISSING_CUSTOMER" and listed["o-unknown"]["reason"] == "UNKNOWN_CUSTOMER"
    assert [i["interactionId"] for i in items(w, reason="UNKNOWN")] == ["o-unknown"]
    assert items(w, min_age=3600) == []
    assert "Alex" not in json.dumps(listed)  # the agent's name is not a reviewer's business

    # a resubmit before the customer exists is refused, with the reason
    r = httpx.post(w.url + "/api/review/o-missing/resubmit", headers=AUTH, json={}, timeout=10)
    assert r.status_code == 409 and "import the customer" in r.json()["error"]
    # the CRM fix arrives; the resubmit delivers the invoice, once
    produce(kafka_bootstrap, w.topic("crm.customers"), [("C-NEW", cust("C-NEW", email="new@example.com",
                                                                         externalContactIds=["ext-9"]))])
    time.sleep(1.5)
    # the actor is the verified client, not what the request claims
    r = httpx.post(w.url + "/api/review/o-missing/resubmit", headers=AUTH, json={"actor": "mallory"}, timeout=10)
    assert r.status_code == 202 and r.json()["actor"] == "client:olga-api"
    assert wait_for(lambda: any(m["To"] == "new@example.com" for m in mail_sink.messages()), 60)
    assert wait_for(lambda: [i["interactionId"] for i in items(w)] == ["o-unknown"], 30)
    assert [i["interactionId"] for i in items(w, status="RESUBMITTED")] == ["o-missing"]
    again = httpx.post(w.url + "/api/review/o-missing/resubmit", headers=AUTH, json={}, timeout=10)
    assert again.status_code == 409  # no longer open: a double click sends nothing twice

    # the CLI mirrors the API
    out = cli(w, "review", "list")
    assert out.returncode == 0 and "o-unknown" in out.stdout and "UNKNOWN_CUSTOMER" in out.stdout, out.stderr
    assert cli(w, "review", "dismiss", "o-unknown").returncode == 2  # a note is required
    out = cli(w, "review", "dismiss", "o-unknown", "--note", "customer closed the account")
    assert out.returncode == 0, out.stderr
    assert wait_for(lambda: items(w) == [], 30)
    shown = cli(w, "review", "show", "o-unknown")
    assert shown.returncode == 0 and "DISMISSED UNKNOWN_CUSTOMER" in shown.stdout, shown.stdout + shown.stderr
    assert "ledger: REVIEW (UNKNOWN_CUSTOMER)" in shown.stdout, shown.stdout
    # an item opens with its interaction's whole history: ledger states and audit events
    assert wait_for(lambda: httpx.get(w.url + "/api/review/o-missing", headers=AUTH, timeout=30).json()
                    ["ledger"]["state"] == "DELIVERED", 30)
    opened = httpx.get(w.url + "/api/review/o-missing", headers=AUTH, timeout=30).json()
    states = opened["ledger"]["states"]
    assert states[0] == "REVIEW" and states[-1] == "DELIVERED" and "BILLED" in states, states
    whats = [h["what"] for h in opened["history"]]
    assert "RESUBMITTED" in whats and "invoice by EMAIL" in whats, whats

    # the audit trail and the trace tell the whole story, with who did what
    assert wait_for(lambda: sum(1 for m in mail_sink.messages()) == 2, 60)
    audit = read_json(kafka_bootstrap, w.topic("callbill.audit"), timeout=30,
                      until=lambda m: any(a["outcome"] == "DISMISSED" for a in m))
    acts = {(a["interactionId"], a["outcome"]): a["actor"] for a in audit if a["stage"] == "review"}
    assert acts[("o-missing", "RESUBMITTED")] == "client:olga-api"
    assert acts[("o-unknown", "DISMISSED")] == "client:ben-cli"
    story = cli(w, "trace", "o-missing")
    assert story.returncode == 0, story.stderr
    text = story.stdout
    for expected in ("ledger: DELIVERED", "intake     REVIEW — MISSING_CUSTOMER", "RESUBMITTED", "by client:olga-api",
                     "billing    BILLED", "delivered  invoice by EMAIL via smtp"):
        assert expected in text, (expected, text)
    assert "new@example.com" not in text  # no personal data in the trail

    # metrics: the counters hold the values of this run
    m = httpx.get(w.url + "/metrics", timeout=10).text
    assert metric(m, "callbill_stage_outcomes_total", stage="review", outcome="RESUBMITTED") == 1
    assert metric(m, "callbill_stage_outcomes_total", stage="review", outcome="DISMISSED") == 1
    assert metric(m, "callbill_stage_outcomes_total", stage="delivery", outcome="DELIVERED") == 2
    assert metric(m, "callbill_stage_outcomes_total", stage="intake", outcome="REVIEW") == 1
    assert metric(m, "callbill_stage_events_in_total", stage="intake") == 4  # three, and the resubmit
    assert metric(m, "callbill_end_to_end_seconds_count") == 2
    assert metric(m, "callbill_consumer_lag", topic=w.topic("callbill.documents")) == 0
    assert metric(m, "callbill_retry_depth") == 0
    assert "callbill_external_errors_total" in m

    # nothing personal in the worker's log
    log = w.log_path.read_text(errors="replace")
    for secret in ("ok@example.com", "new@example.com", "Jane Doe", "5550100", "Alex Agent", ADMIN, *TOKENS.values()):
        assert secret not in log, secret


@pytest.mark.skipif(not (shutil.which("chromium") and shutil.which("chromedriver")),
                    reason="Debian's chromium and chromium-driver are not installed (.ci/run installs them)")
def test_review_page_in_a_headless_browser(make_worker, kafka_bootstrap, mail_sink, tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.wait import WebDriverWait

    w = start(make_worker, kafka_bootstrap, [])
    produce(kafka_bootstrap, w.topic("callbill.interactions"), [("b-missing", interaction("b-missing"))])
    assert wait_for(lambda: len(items(w)) == 1, 60)
    produce(kafka_bootstrap, w.topic("crm.customers"), [("C-B", cust("C-B", email="b@example.com"))])

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                f"--user-data-dir={tmp_path / 'chrome'}"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
    try:
        driver.set_page_load_timeout(60)
        driver.implicitly_wait(15)  # find_element waits for the next page to arrive
        def sign_in(name: str, password: str) -> None:
            driver.find_element(By.ID, "name").send_keys(name)
            driver.find_element(By.ID, "password").send_keys(password)
            driver.find_element(By.ID, "signin").click()

        driver.get(w.url + "/review")
        assert "/review/login" in driver.current_url
        sign_in("rita", "not the password")
        assert "not accepted" in driver.find_element(By.ID, "flash").text
        # a viewer sees the item and its history, and no way to act on it
        sign_in("vera", PASSWORD)
        assert "vera (viewer)" in driver.find_element(By.ID, "who").text
        driver.find_element(By.LINK_TEXT, "b-missing").click()
        assert driver.find_element(By.ID, "reason").text == "MISSING_CUSTOMER"
        assert "an operator resubmits" in driver.find_element(By.ID, "readonly").text
        assert driver.find_elements(By.ID, "resubmit") == []
        driver.find_element(By.ID, "signout").click()
        # the click returns before the browser has followed the sign-out's redirect: wait for it
        WebDriverWait(driver, 10).until(lambda d: "/review/login" in d.current_url)
        driver.get(w.url + "/review")
        assert "/review/login" in driver.current_url  # signed out on the server, not only in the browser
        sign_in("rita", PASSWORD)
        assert driver.find_element(By.ID, "count").text == "1 item(s)"
        driver.find_element(By.LINK_TEXT, "b-missing").click()
        assert driver.find_element(By.ID, "reason").text == "MISSING_CUSTOMER"
        assert "intake" in driver.find_element(By.ID, "history").text
        driver.find_element(By.ID, "customerId").send_keys("C-B")
        driver.find_element(By.ID, "resubmit").click()
        assert driver.find_element(By.ID, "flash").text == "b-missing: resubmit sent"

        def gone() -> bool:
            driver.get(w.url + "/review")
            return driver.find_element(By.ID, "count").text == "0 item(s)"
        assert wait_for(gone, 30, 1)
    finally:
        driver.quit()
    # the invoice, once; an item that sat in review for 30 s may also have had its "Processing
    # Received" acknowledgement (it was late), which a loaded machine makes likely
    def invoices() -> list:
        return [m for m in mail_sink.messages() if ".invoice@" in str(m["Message-ID"])]
    assert wait_for(lambda: len(invoices()) == 1, 60)
    time.sleep(1)
    assert len(invoices()) == 1 and invoices()[0]["To"] == "b@example.com"
    ids = [str(m["Message-ID"]) for m in mail_sink.messages()]
    assert all(".invoice@" in i or ".ack@" in i for i in ids), ids
    audit = read_json(kafka_bootstrap, w.topic("callbill.audit"), timeout=10)
    assert any(a["outcome"] == "RESUBMITTED" and a["actor"] == "rita" for a in audit)


def test_replaying_a_whole_day_sends_nothing_twice(make_worker, kafka_bootstrap, mail_sink):
    # at debug every decision is logged too: the scan at the end covers the most the log ever says
    w = start(make_worker, kafka_bootstrap, [cust("C-R", email="r@example.com")], CALLBILL_LOG_LEVEL="debug")
    n = 20
    for i in range(n):
        assert w.post({"interactionId": f"day-{i}", "customerId": "C-R", "timestamp": "2026-11-24T22:15:00Z",
                       "durationSeconds": 300, "serviceType": "Consultation",
                       "billingCode": "Billable Service"}).status_code == 202
    # one more, for a customer the directory does not know: billing sends it to review
    assert w.post({"interactionId": "day-unknown", "customerId": "C-GONE", "timestamp": "2026-11-24T22:15:00Z",
                   "durationSeconds": 300, "serviceType": "Consultation",
                   "billingCode": "Billable Service"}).status_code == 202
    assert wait_for(lambda: len(mail_sink.messages()) == n, 90)
    assert wait_for(lambda: [i["interactionId"] for i in items(w)] == ["day-unknown"], 30)
    day = "2026-01-01T00:00:00Z"
    dry = cli(w, "replay", "--topic", "callbill.interactions", "--from", day, "--dry-run")
    assert dry.returncode == 0 and f"would replay {n + 1}" in dry.stdout, dry.stdout + dry.stderr
    assert "scanning" in dry.stderr  # the progress bar
    # an ISO --to: nothing was written before the second of January
    early = cli(w, "replay", "--topic", "callbill.interactions", "--from", day, "--to", "2026-01-02T00:00:00Z",
                "--dry-run")
    assert early.returncode == 0 and "scanned 0 messages, would replay 0" in early.stdout, early.stdout
    # --only-failed picks exactly the interaction with an open review item; billing decides again
    failed = cli(w, "replay", "--topic", "callbill.billable", "--from", "0", "--only-failed", "--wait", "30")
    assert failed.returncode == 0 and f"scanned {n + 1} messages, replayed 1" in failed.stdout, failed.stdout
    assert "billing: REVIEW 1" in failed.stdout, failed.stdout
    n_total = n + 1
    for topic, decision in (("genesys.events", "DUPLICATE"), ("callbill.billable", "ALREADY_BILLED"),
                            ("callbill.documents", "ALREADY_DELIVERED")):
        out = cli(w, "replay", "--topic", topic, "--from", day, "--wait", "60")
        assert out.returncode == 0, out.stderr
        # the unknown one has no document; the --only-failed replay added one billable message
        expected = {"genesys.events": n_total, "callbill.billable": n_total + 1, "callbill.documents": n}[topic]
        assert f"replayed {expected}" in out.stdout, out.stdout
        if topic != "genesys.events":  # the assembler passes it on; intake says DUPLICATE
            assert f"{decision} {n}" in out.stdout, out.stdout
    time.sleep(3)
    assert len(mail_sink.messages()) == n
    invoices = read_json(kafka_bootstrap, w.topic("callbill.invoices"), timeout=10)
    assert len(invoices) == n and len({i["invoiceNumber"] for i in invoices}) == n

    # a deliberate reissue says what it will do, needs a confirmation, and sends again
    refused = cli(w, "replay", "--topic", "callbill.billable", "--from", "0", "--force-reissue", "--yes")
    assert refused.returncode == 2 and "credit note" in refused.stderr
    unconfirmed = cli(w, "replay", "--topic", "callbill.documents", "--from", "0", "--to", "1", "--force-reissue")
    assert unconfirmed.returncode == 2 and "NEW message" in unconfirmed.stdout
    out = cli(w, "replay", "--topic", "callbill.documents", "--from", "0", "--to", "1", "--force-reissue", "--yes")
    assert out.returncode == 0 and "replayed 2" in out.stdout and "DELIVERED 2" in out.stdout, out.stdout
    assert wait_for(lambda: len(mail_sink.messages()) == n + 2, 30)
    assert len(read_json(kafka_bootstrap, w.topic("callbill.invoices"), timeout=5)) == n  # no new invoice
    log = w.log_path.read_text(errors="replace")  # an end-to-end run through the bridge: nothing personal logged
    assert '"interactionId": "day-0"' in log or '"interactionId":"day-0"' in log
    # every line the worker wrote (stdout and stderr) is one JSON object, Faust's and
    # aiokafka's own included: no banner, no plain text (issue 17, point 13)
    lines = [line for line in log.splitlines() if line.strip()]
    docs = [json.loads(line) for line in lines]  # raises on the first line that is not JSON
    assert all({"time", "level", "logger", "message"} <= set(d) for d in docs)
    assert {d["logger"].split(".")[0] for d in docs} >= {"callbill", "faust"}
    for secret in ("r@example.com", "Jane Doe", "Springfield", ADMIN):
        assert secret not in log, secret
