"""Session fixtures: a real Kafka broker for every test that needs one.

Order of preference: CALLBILL_KAFKA_BOOTSTRAP (a broker you run), a testcontainers
KafkaContainer where a Docker engine answers, else the project's own local Kafka
(Maven Central jars, KRaft) started here and stopped at the end.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "support"))

from kafka_harness import Worker, docker_available, free_port  # noqa: E402

# Settings are read once per process; keep the test process away from a developer's .env.
for key in [k for k in os.environ if k.startswith("CALLBILL_") and k != "CALLBILL_KAFKA_BOOTSTRAP"]:
    del os.environ[key]

_shared_kafka = None  # the broker this (controller) process started for its xdist workers


def pytest_configure(config):
    """With `-n N` (pytest-xdist), start one broker here, in the controller, before the
    workers are spawned: they inherit CALLBILL_KAFKA_BOOTSTRAP and share it (every test has
    its own topic prefix and group ids), instead of one JVM each on a 2-core machine."""
    global _shared_kafka
    if hasattr(config, "workerinput") or not getattr(config.option, "numprocesses", None):
        return
    if os.environ.get("CALLBILL_KAFKA_BOOTSTRAP") or docker_available() or not _needs_broker(config):
        return
    import tempfile

    from devtools.devstack import LocalKafka

    _shared_kafka = LocalKafka(Path(tempfile.mkdtemp(prefix="callbill-kafka-")), port=free_port(),
                               controller_port=free_port())
    _shared_kafka.start()
    os.environ["CALLBILL_KAFKA_BOOTSTRAP"] = _shared_kafka.bootstrap


def pytest_unconfigure(config):
    global _shared_kafka
    if _shared_kafka is not None:
        _shared_kafka.stop()
        os.environ.pop("CALLBILL_KAFKA_BOOTSTRAP", None)
        _shared_kafka = None


def _needs_broker(config) -> bool:
    """Only the unit and stage tiers given: no broker to start."""
    paths = [a for a in config.args if not a.startswith("-")] or ["tests"]
    fast = ("tests/unit", "tests/stages")
    return not all(Path(a).as_posix().split("::")[0].lstrip("./").startswith(fast) for a in paths)


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory):
    if os.environ.get("CALLBILL_KAFKA_BOOTSTRAP"):
        yield os.environ["CALLBILL_KAFKA_BOOTSTRAP"]
        return
    if docker_available():
        from testcontainers.kafka import KafkaContainer

        with KafkaContainer().with_kraft() as kafka:
            yield kafka.get_bootstrap_server()
        return
    from devtools.devstack import LocalKafka

    kafka = LocalKafka(tmp_path_factory.mktemp("kafka"), port=free_port(), controller_port=free_port())
    kafka.start()
    try:
        yield kafka.bootstrap
    finally:
        kafka.stop()


@pytest.fixture
def mail_sink(tmp_path):
    """A real SMTP server (aiosmtpd) for the test; every worker of the test mails to it."""
    from devtools.smtp_sink import SmtpSink

    sink = SmtpSink(tmp_path / "mail").start()
    yield sink
    sink.stop()


@pytest.fixture
def make_worker(kafka_bootstrap, tmp_path, mail_sink):
    """Start workers on the session broker; each has its own app id and topic prefix."""
    started: list[Worker] = []

    def make(**kw) -> Worker:
        env = {"CALLBILL_SMTP_URL": f"smtp://127.0.0.1:{mail_sink.port}", **kw.pop("extra_env", {})}
        w = Worker(bootstrap=kw.pop("bootstrap", kafka_bootstrap), tmp=tmp_path, extra_env=env, **kw)
        started.append(w)
        return w

    yield make
    for w in started:
        w.stop()


@pytest.fixture
def worker(make_worker):
    return make_worker().start()
