"""The short chaos run (bench/chaos.py has the long one, `make chaos`): faults while
interactions stream in and credit notes are asked for, then nothing lost and nothing twice."""
from __future__ import annotations

import asyncio

import pytest

from bench.chaos import Plan, ok, run

pytestmark = pytest.mark.kafka


def test_kill_broker_restart_erp_s3_and_smtp_faults_lose_nothing_and_send_nothing_twice(tmp_path):
    plan = Plan(events=300, kills=2, erp_outage=6, s3_down=6, smtp_busy=6, broker_restart=True, seed=7,
                post_rate=10, settle_timeout=240, credits=30)
    result = asyncio.run(run(plan, tmp_path))
    print("\n".join(result["faults"]))
    assert result["neither_count"] == 0, result
    assert result["erp_keys_created_twice"] == [] and result["erp_invoices"] >= result["delivered"]
    assert result["duplicate_emails"] == []
    assert result["audit_incomplete_count"] == 0, result["audit_incomplete_stories"]
    # credit notes asked twice each during the faults: one ERP credit note per key, each delivered once
    assert result["credit_keys"] == result["credit_requests"] == 30 and result["credit_requests_sent"] == 60, result
    assert result["credit_keys_unanswered"] == [] and result["credit_keys_with_two_numbers"] == [], result
    assert result["credit_notes_created_twice"] == [] and result["credit_notes_undelivered"] == [], result
    assert ok(result)
    assert result["kills"] >= 1 and result["worker_restarts"] >= result["kills"]
