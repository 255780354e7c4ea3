"""Settings load from the environment, and .env.example documents every one of them."""
import json
import os
import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from runtime.settings import Settings

EXAMPLE = Path(__file__).resolve().parents[2] / ".env.example"


def test_env_example_lists_every_setting_with_its_default():
    text = EXAMPLE.read_text()
    documented = dict(re.findall(r"^(CALLBILL_[A-Z0-9_]+)=(.*)$", text, re.M))
    for name, field in Settings.model_fields.items():
        key = f"CALLBILL_{name.upper()}"
        assert key in documented, f"{key} missing from .env.example"
        default = field.default_factory() if field.default_factory is not None else field.default
        if isinstance(default, bool):
            default = "true" if default else "false"
        elif isinstance(default, list):
            default = json.dumps(default)
        default = "" if default is None else str(getattr(default, "get_secret_value", lambda: default)())
        assert documented[key] == default, key


def test_environment_overrides_and_billable_codes(monkeypatch):
    monkeypatch.setenv("CALLBILL_BILLABLE_CODES", "Billable Service, Premium Support ,")
    monkeypatch.setenv("CALLBILL_KAFKA_BOOTSTRAP", "a:1,b:2")
    s = Settings(_env_file=None)
    assert s.billable_code_set == {"billable service", "premium support"}
    assert s.broker_url == "kafka://a:1,kafka://b:2"


def test_unknown_store_is_refused(monkeypatch):
    monkeypatch.setenv("CALLBILL_STORE", "redis://x")
    with pytest.raises(ValidationError, match="CALLBILL_STORE"):
        Settings(_env_file=None)


def test_an_acknowledgement_that_could_never_go_out_is_refused(monkeypatch):
    monkeypatch.setenv("CALLBILL_ACK_AFTER_SECONDS", "60")
    monkeypatch.setenv("CALLBILL_ACK_DEADLINE_SECONDS", "45")
    with pytest.raises(ValidationError, match="CALLBILL_ACK_AFTER_SECONDS=60 must be below CALLBILL_ACK_DEADLINE_SECONDS=45"):
        Settings(_env_file=None)
    monkeypatch.setenv("CALLBILL_ACK_AFTER_SECONDS", "0")  # off: no deadline to keep
    assert Settings(_env_file=None).ack_after_seconds == 0


@pytest.mark.parametrize("old,new,field", [
    ("CALLBILL_ERP_BACKOFF_BASE", "CALLBILL_BACKOFF_BASE", "backoff_base"),
    ("CALLBILL_ERP_BACKOFF_CAP", "CALLBILL_BACKOFF_CAP", "backoff_cap"),
    ("CALLBILL_BILLING_BATCH_WINDOW", "CALLBILL_BATCH_WINDOW", "batch_window"),
])
def test_a_renamed_setting_still_reads_its_old_name_and_says_which_to_use(monkeypatch, old, new, field):
    monkeypatch.setenv(old, "0.75")
    with pytest.warns(DeprecationWarning, match=f"{old} is deprecated; use {new}"):
        assert getattr(Settings(_env_file=None), field) == 0.75
    monkeypatch.setenv(new, "0.5")  # the new name wins
    with pytest.warns(DeprecationWarning):
        assert getattr(Settings(_env_file=None), field) == 0.5


def test_the_configuration_reference_is_generated_from_the_settings_model():
    from devtools.config_doc import render

    doc = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"
    assert doc.read_text() == render(), "run: python -m devtools.config_doc > docs/configuration.md"


def test_an_empty_value_is_unset_and_an_unsafe_bounce_directory_is_refused(monkeypatch, tmp_path):
    for line in EXAMPLE.read_text().splitlines():  # every empty line of .env.example, as a copy of it sets them
        if re.fullmatch(r"CALLBILL_[A-Z0-9_]+=", line):
            monkeypatch.setenv(line[:-1], "")
    s = Settings(_env_file=None)
    assert s.bounce_maildir is None and s.seller_logo is None and s.wrapup_codes_file is None
    assert s.kafka_ssl_cafile is None and s.invoice_template is None
    monkeypatch.chdir(tmp_path)
    for path, why in ((".", "the working directory"), ("/", "the file system root"), ("~", "a home directory"),
                      (str(EXAMPLE.parent), "a source checkout")):
        monkeypatch.setenv("CALLBILL_BOUNCE_MAILDIR", path)
        with pytest.raises(ValueError, match=f"CALLBILL_BOUNCE_MAILDIR is {why}"):
            Settings(_env_file=None)
    monkeypatch.setenv("CALLBILL_BOUNCE_MAILDIR", str(tmp_path / "bounces"))
    assert Settings(_env_file=None).bounce_maildir == tmp_path / "bounces"


def test_an_unknown_variable_is_refused_with_the_closest_name(monkeypatch, tmp_path):
    from runtime.settings import get_settings, unknown_variables

    assert unknown_variables(["CALLBILL_ERP_TOKN", "CALLBILL_FOO", "CALLBILL_ERP_TOKEN", "CALLBILL_DEV_S3_PORT",
                              "CALLBILL_ERP_BACKOFF_BASE", "CALLBILL_CACHE_DIR", "PATH"]) == [
        "CALLBILL_ERP_TOKN is not a setting; did you mean CALLBILL_ERP_TOKEN?",
        "CALLBILL_FOO is not a setting (docs/configuration.md lists them)"]
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("CALLBILL_SELLER_NAM=Acme GmbH\nAWS_REGION=eu-central-1\n")
    get_settings.cache_clear()
    try:
        with pytest.raises(ValueError, match="CALLBILL_SELLER_NAM is not a setting; did you mean CALLBILL_SELLER_NAME") as e:
            get_settings()
        assert "Acme" not in str(e.value)  # the name, never the value
        (tmp_path / ".env").write_text("CALLBILL_SELLER_NAME=Acme GmbH\nAWS_REGION=eu-central-1\n")
        get_settings.cache_clear()
        assert get_settings().seller_name == "Acme GmbH"
    finally:
        get_settings.cache_clear()


def test_settings_come_from_a_secrets_directory_after_the_environment(monkeypatch, tmp_path):
    from runtime.settings import get_settings

    monkeypatch.chdir(tmp_path)
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "CALLBILL_ERP_TOKEN").write_text("from-a-file\n")  # as `docker secret` writes it
    (secrets / "CALLBILL_SELLER_NAME").write_text("Acme GmbH")
    (secrets / "db_password").write_text("not ours")  # another service's secret: ignored
    monkeypatch.setenv("CALLBILL_SECRETS_DIR", str(secrets))
    monkeypatch.setenv("CALLBILL_SELLER_NAME", "Acme from the environment")
    get_settings.cache_clear()
    try:
        s = get_settings()
        assert s.erp_token.get_secret_value() == "from-a-file"
        assert s.seller_name == "Acme from the environment"  # the environment wins over a file

        (secrets / "CALLBILL_ERP_TOKN").write_text("x")
        get_settings.cache_clear()
        with pytest.raises(ValueError, match="CALLBILL_ERP_TOKN is not a setting; did you mean CALLBILL_ERP_TOKEN"):
            get_settings()

        monkeypatch.setenv("CALLBILL_SECRETS_DIR", str(tmp_path / "missing"))
        get_settings.cache_clear()
        with pytest.raises(ValueError, match="CALLBILL_SECRETS_DIR: .*missing is not a directory"):
            get_settings()
    finally:
        get_settings.cache_clear()


def test_every_file_the_settings_name_is_checked_before_the_worker_starts(monkeypatch, tmp_path):
    from app.preflight import checked_settings
    from runtime.settings import get_settings

    repo = Path(__file__).resolve().parents[2]
    monkeypatch.chdir(repo)  # the sample rate card's relative path
    for k in [k for k in os.environ if k.startswith("CALLBILL_")]:
        monkeypatch.delenv(k)
    monkeypatch.setenv("CALLBILL_LINK_SECRET", "link-secret-123")
    codes = tmp_path / "codes.json"
    codes.write_text('{"entities": [{"id": "a"}]}')
    not_an_image = tmp_path / "logo.png"
    not_an_image.write_text("<svg/>")
    bad_ca = tmp_path / "ca.pem"
    bad_ca.write_text("not a certificate")
    brand = tmp_path / "brand"
    brand.mkdir()
    (brand / "de.po").write_text('msgid "Hello {name},"\nmsgstr "Hallo {vorname},"\n')
    for name, value, named in (
            ("CALLBILL_CATALOG_DIR", brand, r"CALLBILL_CATALOG_DIR: catalog .*de.po: 'Hello \{name\},': placeholder"),
            ("CALLBILL_CATALOG_DIR", tmp_path / "nowhere", "CALLBILL_CATALOG_DIR: .* is not a directory"),
            ("CALLBILL_WRAPUP_CODES_FILE", codes, r"CALLBILL_WRAPUP_CODES_FILE: .*entities\[0\] needs an `id` and a `name`"),
            ("CALLBILL_WRAPUP_CODES_FILE", tmp_path / "missing.csv", "CALLBILL_WRAPUP_CODES_FILE: .*cannot be read"),
            ("CALLBILL_SELLER_LOGO", not_an_image, "CALLBILL_SELLER_LOGO: .* is not a PNG or JPEG image"),
            ("CALLBILL_SELLER_LOGO", tmp_path / "missing.png", "CALLBILL_SELLER_LOGO: .* cannot be read"),
            ("CALLBILL_KAFKA_SSL_CAFILE", bad_ca, "CALLBILL_KAFKA_SSL_CAFILE: .* is not a readable CA bundle")):
        monkeypatch.setenv(name, str(value))
        get_settings.cache_clear()
        try:
            with pytest.raises(ValueError, match=named):
                checked_settings()
        finally:
            monkeypatch.delenv(name)
            get_settings.cache_clear()
    codes.write_text('{"entities": [{"id": "a", "name": "Billable Service"}], "pageNumber": 1, "pageCount": 1}')
    monkeypatch.setenv("CALLBILL_WRAPUP_CODES_FILE", str(codes))
    try:
        assert checked_settings().wrapup_codes_file == codes
    finally:
        get_settings.cache_clear()


def test_rocksdb_tables_are_opened_with_bounded_memory(monkeypatch):
    """Faust's RocksDB defaults (three 64 MiB memtables and a 2 GiB block cache per partition's
    database) grew a worker by 40 MiB a minute in a soak; callbill's are a few MiB each."""
    monkeypatch.setenv("CALLBILL_STORE", "memory://")
    assert Settings(_env_file=None).table_store_options() == {}
    monkeypatch.setenv("CALLBILL_STORE", "rocksdb://")
    monkeypatch.setenv("CALLBILL_ROCKSDB_MEMORY", str(16 * 1024 * 1024))
    assert Settings(_env_file=None).table_store_options() == {"write_buffer_size": 4 * 1024 * 1024, "max_write_buffer_number": 2,
                                                "block_cache_size": 16 * 1024 * 1024}
    monkeypatch.setenv("CALLBILL_ROCKSDB_WRITE_BUFFER", "1000")
    with pytest.raises(ValidationError, match="rocksdb_write_buffer"):
        Settings(_env_file=None)
