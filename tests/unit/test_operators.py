"""Operators: accounts with argon2 hashes, client tokens, roles, sessions that end, and
sign-in attempts that are counted (adapters/operators.py, app/web/auth.py)."""
from __future__ import annotations

import asyncio
import json
import os
import stat
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

import pytest

from adapters.operators import Accounts, AccountsError, AccountsFile
from app.web.auth import COOKIE, Gate, LoginThrottle
from tables.sessions import Sessions, session_key

PW = "correct horse battery"


def test_passwords_are_kept_as_argon2id_hashes_and_checked(tmp_path):
    path = tmp_path / "operators.json"
    a = Accounts()
    a.add("alice", "operator", PW)
    a.save(path)
    text = path.read_text()
    assert PW not in text and "$argon2id$" in text
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600  # the hashes are secrets too
    loaded = Accounts.load(path)
    assert loaded.sign_in("alice", PW).role == "operator"
    assert loaded.sign_in("alice", PW + "x") is None
    assert loaded.sign_in("nobody", PW) is None


@pytest.mark.parametrize("call, message", [
    (lambda a: a.add("bob", "operator", "short"), "at least 12"),
    (lambda a: a.add("al ice", "operator", PW), "a name is"),
    (lambda a: a.add("bob", "admin", PW), "viewer"),
    (lambda a: a.add("alice", "viewer", PW), "exists already"),
    (lambda a: a.passwd("nobody", PW), "no operator nobody"),
    (lambda a: a.add_client("alice", "viewer"), "a name of its own"),
])
def test_bad_commands_are_refused_with_the_reason(call, message):
    a = Accounts()
    a.add("alice", "operator", PW)
    with pytest.raises(AccountsError, match=message):
        call(a)


def test_a_new_password_or_a_revoke_ends_earlier_sessions():
    a = Accounts()
    a.add("alice", "viewer", PW)
    before = datetime.now(timezone.utc)
    assert a.operator("alice", before) is not None
    a.revoke("alice")
    assert a.operator("alice", before) is None
    assert a.operator("alice", datetime.now(timezone.utc)) is not None
    later = datetime.now(timezone.utc)
    a.passwd("alice", PW + "!")
    assert a.operator("alice", later) is None
    a.remove("alice")
    assert a.operator("alice", datetime.now(timezone.utc)) is None


def test_client_tokens_are_kept_as_digests_each_with_its_role():
    a = Accounts()
    viewer, operator = a.add_client("dash", "viewer"), a.add_client("sync", "operator")
    assert viewer not in json.dumps(a.clients) and operator not in json.dumps(a.clients)
    assert (a.client(viewer).role, a.client(viewer).actor) == ("viewer", "client:dash")
    assert a.client(operator).can_act and not a.client(viewer).can_act
    assert a.client("wrong") is None


def test_the_file_is_read_again_when_it_changes(tmp_path):
    path = tmp_path / "operators.json"
    f = AccountsFile(path)
    assert f.get().operators == {}
    a = Accounts()
    a.add("alice", "viewer", PW)
    a.save(path)
    assert "alice" in f.get().operators
    a.remove("alice")
    a.save(path)
    assert "alice" not in f.get().operators
    path.write_text("{not json")
    with pytest.raises(AccountsError, match="is not an operators file"):
        f.get()


def test_failed_sign_ins_are_counted_per_name_and_per_address():
    now = [0.0]
    t = LoginThrottle(attempts=3, window=60, clock=lambda: now[0])
    for _ in range(3):
        assert t.retry_after("name:a", "address:1") == 0
        t.failed("name:a", "address:1")
    assert t.retry_after("name:a", "address:2") == 60  # the name is locked from anywhere
    assert t.retry_after("name:b", "address:1") == 60  # and the address for any name
    assert t.retry_after("name:b", "address:2") == 0
    now[0] = 61
    assert t.retry_after("name:a", "address:1") == 0  # a sliding window, not a lock-out for ever


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 12, 3, 9, 0, tzinfo=timezone.utc)

    def __call__(self) -> datetime:
        return self.now


def gate(tmp_path, hours: float = 8.0, attempts: int = 5) -> tuple[Gate, Clock, list]:
    path = tmp_path / "operators.json"
    a = Accounts()
    a.add("alice", "operator", PW)
    a.add("vera", "viewer", PW)
    a.save(path)
    settings = SimpleNamespace(operators_file=path, admin_token=None, session_hours=hours,
                               login_attempts=attempts, login_window=300.0, web_stats=False)
    clock = Clock()
    g = Gate(settings, Sessions(), clock=clock)
    sent: list = []

    async def send(key: bytes, value: bytes | None) -> None:
        sent.append((key, value))

    g.send = send
    return g, clock, sent


def request(sid: str | None = None, auth: str | None = None) -> SimpleNamespace:
    return SimpleNamespace(cookies={COOKIE: sid} if sid else {}, headers={"Authorization": auth} if auth else {})


def test_a_session_holds_until_it_expires_or_its_operator_signs_out(tmp_path):
    async def run() -> None:
        g, clock, sent = gate(tmp_path, hours=1)
        # the account's notBefore is the real time of `add`: sign in after it
        clock.now = datetime.now(timezone.utc)
        sid, _ = await g.sign_in("alice", PW, "10.0.0.1")
        assert sid and (await g.principal(request(sid))).name == "alice"
        # what the topic gets is keyed by the id's digest and never holds the id
        key, value = sent[0]
        assert key.decode() == session_key(sid) and sid.encode() not in value
        clock.now += timedelta(minutes=59)
        assert await g.principal(request(sid)) is not None
        clock.now += timedelta(minutes=2)
        assert await g.principal(request(sid)) is None  # expired on the server, whatever the cookie says
        clock.now = datetime.now(timezone.utc)
        sid2, _ = await g.sign_in("vera", PW, "10.0.0.1")
        assert (await g.principal(request(sid2))).role == "viewer"
        await g.sign_out(request(sid2))
        assert sent[-1] == (session_key(sid2).encode(), None)  # a tombstone ends it on every worker
        assert await g.principal(request(sid2)) is None

    asyncio.run(run())


def test_wrong_passwords_lock_the_name_and_bearer_claims_are_checked(tmp_path, monkeypatch):
    monkeypatch.setattr("app.web.auth.SESSION_ARRIVAL", 0.1)

    async def run() -> None:
        g, clock, _ = gate(tmp_path, attempts=2)
        clock.now = datetime.now(timezone.utc)
        assert await g.sign_in("alice", "wrong password!", "10.0.0.1") == (None, 0.0)
        assert await g.sign_in("alice", "wrong password!", "10.0.0.2") == (None, 0.0)
        sid, wait = await g.sign_in("alice", PW, "10.0.0.3")  # the right password, too late
        assert sid is None and 0 < wait <= 300
        assert await g.principal(request("A" * 43)) is None  # an unknown session id
        assert await g.principal(request(auth="Bearer not-a-token")) is None

    asyncio.run(run())
