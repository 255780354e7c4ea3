"""The production store: the ledger on RocksDB survives a restart and still dedupes."""
import time
import uuid

from kafka_harness import read_json, webhook


def test_ledger_on_rocksdb_dedupes_across_a_restart(make_worker, kafka_bootstrap):
    w = make_worker(extra_env={"CALLBILL_STORE": "rocksdb://"}).start()
    i = f"gen-{uuid.uuid4().hex[:12]}"
    assert w.post(webhook(i)).status_code == 202
    read_json(kafka_bootstrap, w.topic("callbill.billable"), until=lambda m: len(m) >= 1)
    time.sleep(4)  # past one periodic offset commit (a stop itself commits nothing)
    w.stop()
    assert any((w.tmp / f"{w.app_id}-data").rglob("*.sst")) or any((w.tmp / f"{w.app_id}-data").rglob("CURRENT"))
    # every partition's database opened with callbill's memory bounds, not Faust's (64 MiB x 3); RocksDB's
    # options file records the memtables (the block cache's size it does not write down)
    options = [p.read_text() for p in (w.tmp / f"{w.app_id}-data").rglob("OPTIONS-*")]
    assert options and all("\n  write_buffer_size=4194304\n" in o and "\n  max_write_buffer_number=2\n" in o
                           for o in options)
    w2 = make_worker(app_id=w.app_id, extra_env={"CALLBILL_STORE": "rocksdb://"}).start()
    assert w2.post(webhook(i)).status_code == 202
    audit = read_json(kafka_bootstrap, w2.topic("callbill.audit"),
                      until=lambda msgs: sum(m["stage"] == "intake" for m in msgs) >= 2)
    assert [a["outcome"] for a in audit if a["stage"] == "intake"] == ["FORWARDED", "DUPLICATE"]
    assert len(read_json(kafka_bootstrap, w2.topic("callbill.billable"), timeout=3)) == 1
