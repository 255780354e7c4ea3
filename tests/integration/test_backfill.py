"""`callbill backfill` onto a real broker: what it publishes is what the assembler reads.

The assembler's decisions on every Genesys path (detail events, transfers, wrap-up codes,
partial conversations, reconciliation, the directory) are tested in process, in
tests/stages/test_genesys_paths.py; here only the command's own part needs Kafka.
"""
import os
import subprocess
import sys
import uuid

import pytest

from fake_genesys import FakeGenesys, Leg, Scenario
from kafka_harness import REPO, read_json, unique

pytestmark = pytest.mark.kafka
BILLABLE = str(uuid.uuid4())


def test_the_backfill_command_publishes_billable_conversations_once_per_run(kafka_bootstrap, tmp_path):
    with FakeGenesys() as fake:
        fake.wrapup_codes[BILLABLE] = "Billable Service"
        sc = Scenario(external_contact_id=str(uuid.uuid4()), agents=[Leg("u1", "q1", 420, 12.6, BILLABLE)])
        fake.conversations[sc.conversation_id] = sc.analytics_conversation()
        prefix = unique("bf") + "."
        env = {k: v for k, v in os.environ.items() if not k.startswith("CALLBILL_")}
        env.update({"CALLBILL_KAFKA_BOOTSTRAP": kafka_bootstrap, "CALLBILL_TOPIC_PREFIX": prefix,
                    "CALLBILL_TOPIC_PARTITIONS": "2", "CALLBILL_DATA_DIR": str(tmp_path / "data"),
                    "CALLBILL_GENESYS_CLIENT_ID": fake.client_id, "CALLBILL_GENESYS_CLIENT_SECRET": fake.client_secret,
                    "CALLBILL_GENESYS_API_URL": fake.api_url, "CALLBILL_GENESYS_LOGIN_URL": fake.login_url})
        for _ in range(2):
            out = subprocess.run([sys.executable, "-m", "app.cli", "backfill", "--since", "2026-11-24T00:00:00Z",
                                  "--until", "2026-11-25T00:00:00Z"], cwd=REPO, env=env, capture_output=True,
                                 text=True, timeout=60)
            assert out.returncode == 0, out.stderr
            assert "1 billable published" in out.stdout
    records = read_json(kafka_bootstrap, prefix + "genesys.events", until=lambda m: len(m) >= 2, timeout=20)
    # each run publishes the conversation; the assembler's pending table makes the second harmless
    assert [(r["kind"], r["payload"]["conversationId"]) for r in records] == [("backfill", sc.conversation_id)] * 2
