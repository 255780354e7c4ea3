"""With its broker gone the bridge says 503 and Retry-After, so the sender keeps the event."""
import signal

import httpx

from kafka_harness import free_port, webhook


def test_bridge_answers_503_when_kafka_is_down(make_worker, tmp_path):
    from devtools.devstack import LocalKafka

    kafka = LocalKafka(tmp_path / "own-kafka", port=free_port(), controller_port=free_port())
    kafka.start()
    try:
        w = make_worker(bootstrap=kafka.bootstrap).start()
        assert w.post(webhook("gen-before")).status_code == 202
        kafka.stop()
        r = w.post(webhook("gen-during"))
        assert r.status_code == 503, r.text
        assert r.headers["Retry-After"] == "5"
        assert "Kafka is unavailable" in r.json()["error"]
        h = httpx.get(w.url + "/health", timeout=10)
        assert h.status_code == 503 and h.json()["kafka"] == "down"
        assert w.proc.poll() is None  # the worker waits for its broker, it does not die
        w.stop(signal.SIGKILL)
    finally:
        kafka.stop()
