"""Operators who are who they say, on a real broker with two workers of one app: a session
made on one worker holds on the other, ends there at sign-out and at `callbill operators
revoke`, a viewer cannot act, failed sign-ins are refused after the limit, and the audit
trail records the verified operator whatever the request claims."""
from __future__ import annotations

import hashlib
import subprocess
import sys

import httpx
import pytest

from kafka_harness import REPO, create_topics, read_json, read_topic
from operator_accounts import PASSWORD
from test_billing import produce
from test_delivery import wait_for
from test_operations import interaction

pytestmark = pytest.mark.kafka


def operators(path, *args: str, password: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "app.cli", "operators", "--file", str(path), *args], cwd=REPO,
                          input=password, capture_output=True, text=True, timeout=60)


def sign_in(url: str, name: str, password: str = PASSWORD) -> httpx.Response:
    return httpx.post(url + "/review/login", data={"name": name, "password": password}, follow_redirects=False,
                      timeout=30)


def session(r: httpx.Response) -> dict[str, str]:
    assert r.status_code == 303, r.text
    return {"Cookie": f"callbill_session={r.cookies['callbill_session']}"}


def test_sessions_roles_and_revocation_across_two_workers(make_worker, kafka_bootstrap, tmp_path):
    path = tmp_path / "operators.json"
    for name, role in (("olga", "operator"), ("vera", "viewer")):
        r = operators(path, "add", name, "--role", role, "--password-stdin", password=PASSWORD + "\n")
        assert r.returncode == 0, r.stderr
    r = operators(path, "add", "weak", "--role", "viewer", "--password-stdin", password="short\n")
    assert r.returncode == 1 and "at least 12 characters" in r.stderr
    env = {"CALLBILL_OPERATORS_FILE": str(path), "CALLBILL_LOGIN_ATTEMPTS": "3"}
    a = make_worker(partitions=2, extra_env=env)
    create_topics(kafka_bootstrap, a.prefix, a.partitions)
    b = make_worker(partitions=2, app_id=a.app_id, extra_env=env)
    a.start(), b.start()
    produce(kafka_bootstrap, a.topic("callbill.interactions"), [("s-missing", interaction("s-missing"))])

    # a viewer signed in on worker A is known on worker B at once, and reads but cannot act
    vera = session(sign_in(a.url, "vera"))
    assert wait_for(lambda: httpx.get(b.url + "/api/review", headers=vera, timeout=30).json()["count"] == 1, 60)
    r = httpx.post(b.url + "/api/review/s-missing/dismiss", headers=vera, json={"note": "no"}, timeout=30)
    assert r.status_code == 403
    r = httpx.post(a.url + "/review/s-missing/dismiss", headers=vera, data={"note": "no"}, timeout=30)
    assert r.status_code == 403  # the page refuses too, not only the hidden button

    # an operator acts; the audit trail has her name, not the one the request claims
    olga = session(sign_in(b.url, "olga"))
    r = httpx.post(a.url + "/api/review/s-missing/dismiss", timeout=30,
                   headers={**olga, "X-Callbill-Actor": "mallory"}, json={"note": "test call", "actor": "mallory"})
    assert r.status_code == 202 and r.json()["actor"] == "olga"
    audit = read_json(kafka_bootstrap, a.topic("callbill.audit"), timeout=30,
                      until=lambda m: any(x["outcome"] == "DISMISSED" for x in m))
    assert [x["actor"] for x in audit if x["outcome"] == "DISMISSED"] == ["olga"]

    # signing out on B ends the session on A too
    assert httpx.post(b.url + "/review/logout", headers=olga, follow_redirects=False, timeout=30).status_code == 303
    assert wait_for(lambda: httpx.get(a.url + "/api/review", headers=olga, timeout=30).status_code == 401, 30)

    # `callbill operators revoke` ends a session on every worker, without a restart
    assert operators(path, "revoke", "vera").returncode == 0
    for w in (a, b):
        assert httpx.get(w.url + "/api/review", headers=vera, timeout=30).status_code == 401
    session(sign_in(a.url, "vera"))  # she may sign in again

    # three wrong passwords, then even the right one is refused for a while
    for _ in range(3):
        assert sign_in(a.url, "olga", "not her password").status_code == 401
    refused = sign_in(a.url, "olga")
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) > 0

    # the sessions topic holds digests of the ids, never an id the cookie holds
    records = read_topic(kafka_bootstrap, a.topic("callbill.sessions"), timeout=10, until=lambda m: len(m) >= 4)
    cookie = olga["Cookie"].split("=", 1)[1]
    digest = hashlib.sha256(cookie.encode()).hexdigest()
    assert [v is None for k, v in records if k == digest] == [False, True]  # signed in, signed out
    assert cookie not in str(records)
    for w in (a, b):
        log = w.log_path.read_text(errors="replace")
        assert cookie not in log and PASSWORD not in log
