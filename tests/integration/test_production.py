"""The documented production configuration loads, and unsafe combinations are refused."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import faust
import pytest
from pydantic import ValidationError

from runtime.settings import Settings

REPO = Path(__file__).resolve().parents[2]
SECRETS = {"CALLBILL_KAFKA_SASL_PASSWORD": "kafka-pw-123", "CALLBILL_WEBHOOK_SECRET": "hook-secret-123",
           "CALLBILL_LINK_SECRET": "link-secret-123",
           "CALLBILL_ERP_TOKEN": "erp-token-123", "CALLBILL_SMTP_PASSWORD": "smtp-pw-123"}


# what deploy/production.env leaves to the operator (production refuses the demo's values)
OPERATOR = {"CALLBILL_SELLER_NAME": "Acme Contact GmbH", "CALLBILL_SELLER_ADDRESS": "Hauptstr. 1|10115 Berlin|Germany",
            "CALLBILL_SELLER_TAX_ID": "DE136695976", "CALLBILL_SELLER_CONTACT": "billing@acme-contact.de",
            "CALLBILL_MAIL_FROM": "invoices@acme-contact.de"}


def production_env() -> dict[str, str]:
    env = {}
    for line in (REPO / "deploy" / "production.env").read_text().splitlines():
        if line and not line.startswith("#"):
            k, _, v = line.partition("=")
            env[k] = v
    return env


def load(monkeypatch, env: dict[str, str]) -> Settings:
    for k in [k for k in os.environ if k.startswith("CALLBILL_")]:
        monkeypatch.delenv(k)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    return Settings(_env_file=None)


def test_the_documented_production_configuration_loads(monkeypatch):
    s = load(monkeypatch, {**production_env(), **SECRETS, **OPERATOR})
    assert s.env == "production" and s.topic_replication == 3 and s.store == "rocksdb://"
    monkeypatch.setattr("runtime.kafka.get_settings", lambda: s)
    from runtime.kafka import client_kwargs, faust_credentials

    kw = client_kwargs()
    assert kw["security_protocol"] == "SASL_SSL" and kw["sasl_mechanism"] == "SCRAM-SHA-512"
    assert kw["sasl_plain_username"] == "callbill" and kw["ssl_context"] is not None
    creds = faust_credentials()
    assert isinstance(creds, faust.SASLCredentials) and creds.mechanism.value == "SCRAM-SHA-512"
    assert "kafka-pw-123" not in repr(s)  # secrets stay out of reprs and logs


@pytest.mark.parametrize("change, named", [
    ({"CALLBILL_TOPIC_REPLICATION": "1"}, "CALLBILL_TOPIC_REPLICATION=1"),
    ({"CALLBILL_STORE": "memory://"}, "CALLBILL_STORE must be rocksdb://"),
    ({"CALLBILL_WEBHOOK_SECRET": ""}, "CALLBILL_WEBHOOK_SECRET is required"),
    ({"CALLBILL_ADMIN_TOKEN": "admin-token-123"}, "CALLBILL_ADMIN_TOKEN is refused in production"),
    ({"CALLBILL_OPERATORS_FILE": ""}, "CALLBILL_OPERATORS_FILE is required"),
    ({"CALLBILL_LINK_SECRET": ""}, "CALLBILL_LINK_SECRET is required"),
    ({"CALLBILL_KAFKA_SECURITY_PROTOCOL": "PLAINTEXT"}, "needs SSL or SASL_SSL"),
    ({"CALLBILL_KAFKA_SASL_PASSWORD": ""}, "needs CALLBILL_KAFKA_SASL_USERNAME and _PASSWORD"),
    ({"CALLBILL_PUBLIC_URL": "http://billing.example.com"}, "must be https://"),
    ({"CALLBILL_ERP_TOKEN": ""}, "production needs CALLBILL_ERP_TOKEN"),
    ({"CALLBILL_ERP_URL": "http://erp.example.com"}, "CALLBILL_ERP_URL must be https://"),
    ({"CALLBILL_SMTP_PASSWORD": ""}, "production needs CALLBILL_SMTP_PASSWORD"),
    ({"CALLBILL_SMTP_URL": "smtp://smtp.example.com:25"}, "production needs smtps://"),
    ({"CALLBILL_GENESYS_CLIENT_ID": "client-1"}, "CALLBILL_GENESYS_CLIENT_SECRET go together"),
])
def test_unsafe_production_settings_are_refused(monkeypatch, change, named):
    env = {**production_env(), **SECRETS, **OPERATOR, **change}
    with pytest.raises(ValidationError) as e:
        load(monkeypatch, {k: v for k, v in env.items() if v != ""})
    assert named in str(e.value)
    for secret in SECRETS.values():
        assert secret not in str(e.value)


def test_production_refuses_the_demo_values_by_name(monkeypatch):
    """Left as deploy/production.env has them, the operator's values fall back to the demo's."""
    with pytest.raises(ValidationError) as e:
        load(monkeypatch, {k: v for k, v in {**production_env(), **SECRETS}.items() if v != ""})
    for named in ("CALLBILL_SELLER_NAME is the demo seller's", "CALLBILL_SELLER_ADDRESS is the demo address",
                  "CALLBILL_SELLER_TAX_ID is required in production", "CALLBILL_MAIL_FROM is at an example domain",
                  "CALLBILL_SELLER_CONTACT is at an example domain"):
        assert named in str(e.value), named
    with pytest.raises(ValidationError, match="CALLBILL_RATE_CARD is the sample rate card"):
        load(monkeypatch, {**production_env(), **SECRETS, **OPERATOR, "CALLBILL_RATE_CARD": "/app/samples/rate-card.yaml"})
    for address in ("invoices@example.com", "invoices@billing.example.net", "invoices@callbill.example"):
        with pytest.raises(ValidationError, match="CALLBILL_MAIL_FROM is at an example domain"):
            load(monkeypatch, {**production_env(), **SECRETS, **OPERATOR, "CALLBILL_MAIL_FROM": address})
    # development keeps the demo's values: `make demo` runs on them
    assert load(monkeypatch, {}).seller_name == "Callbill Demo Services Ltd"


def test_the_dockerfile_bakes_in_no_sample_rate_card():
    text = (REPO / "Dockerfile").read_text()
    assert "samples/" not in re.sub(r"^#.*$", "", text, flags=re.M)
    assert "CALLBILL_RATE_CARD=/config/rate-card.yaml" in text


def test_development_defaults_stay_easy(monkeypatch):
    s = load(monkeypatch, {})
    assert s.env == "development" and s.topic_replication == 1 and s.kafka_security_protocol == "PLAINTEXT"


def test_the_worker_refuses_to_start_with_a_clear_error():
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLBILL_")}
    env.update({**production_env(), "CALLBILL_TOPIC_REPLICATION": "1", "CALLBILL_ADMIN_TOKEN": "admin-token-123"})
    r = subprocess.run([sys.executable, "-m", "app.cli", "worker"], cwd=REPO, env=env, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 2
    assert "CALLBILL_TOPIC_REPLICATION=1" in r.stderr and "CALLBILL_WEBHOOK_SECRET is required" in r.stderr
    assert "admin-token-123" not in r.stderr


def test_the_dockerfile_copies_what_exists():
    text = (REPO / "Dockerfile").read_text()
    for src in re.findall(r"^COPY (\S+)", text, re.M):
        assert (REPO / src).exists(), src
    assert "USER callbill" in text and "VOLUME /data" in text and 'CMD ["callbill", "worker"]' in text


def test_a_worker_started_from_a_copy_of_env_example_leaves_every_file_where_it_was(make_worker, tmp_path):
    """`cp .env.example .env` set CALLBILL_BOUNCE_MAILDIR= (empty), which loaded as the working
    directory: the bounce poller then moved README.md, Makefile … into ./unreadable/."""
    import shutil
    import time

    here = tmp_path / "checkout"
    here.mkdir()
    shutil.copy(REPO / ".env.example", here / ".env")
    for name in ("README.md", "Makefile", "pyproject.toml", "notes.txt"):
        (here / name).write_text(f"{name}\n")
    before = sorted(p.name for p in here.iterdir())
    w = make_worker(cwd=here, extra_env={"CALLBILL_RATE_CARD": str(REPO / "samples" / "rate-card.yaml"),
                                         "CALLBILL_BOUNCE_POLL_INTERVAL": "0.5"}).start()
    time.sleep(3)  # several poll intervals
    assert w.proc.poll() is None
    assert sorted(p.name for p in here.iterdir()) == before


def test_the_worker_refuses_a_misspelt_variable_by_name():
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLBILL_")}
    env.update({"CALLBILL_WEBHOOK_SECRET": "s", "CALLBILL_ERP_TOKN": "erp-secret-value"})
    r = subprocess.run([sys.executable, "-m", "app.cli", "worker"], cwd=REPO, env=env, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 2, r.stderr
    assert "CALLBILL_ERP_TOKN is not a setting; did you mean CALLBILL_ERP_TOKEN?" in r.stderr
    assert "erp-secret-value" not in r.stderr


def test_the_shipped_configurations_name_only_known_variables():
    from runtime.settings import unknown_variables

    for path in (REPO / "deploy" / "production.env", REPO / ".env.example", REPO / "Dockerfile"):
        names = re.findall(r"(CALLBILL_[A-Z0-9_]+)=", path.read_text())
        assert names and unknown_variables(names) == [], path


def test_faust_a_app_worker_runs_the_same_preflight():
    """`faust -A app worker` used to dump pydantic's traceback, the input values in it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLBILL_")}
    env.update({**production_env(), "CALLBILL_TOPIC_REPLICATION": "1", "CALLBILL_ADMIN_TOKEN": "admin-token-123"})
    faust_cli = Path(sys.executable).with_name("faust")
    r = subprocess.run([str(faust_cli), "-A", "app", "worker"], cwd=REPO, env=env, capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 2, r.stdout + r.stderr
    assert "callbill worker: invalid settings" in r.stderr and "CALLBILL_TOPIC_REPLICATION=1" in r.stderr
    assert "Traceback" not in r.stderr and "admin-token-123" not in r.stderr + r.stdout
