"""`callbill customers import`: row-by-row validation of the CRM export, and publishing to the directory."""
from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path

import pytest

from app.ops.customers import ImportFileError, main, publish, read_rows
from schemas.customers import Customer

HEADER = ("customerId,name,email,phone,timezone,currency,locale,taxId,paymentTermsDays,externalContactIds,"
          "address_line1,address_line2,address_city,address_region,address_postalCode,address_country,"
          "transactionalEmail,marketingEmail,sms,postal")


def write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def jsonl(*rows: dict | str) -> str:
    return "\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n"


# --- CSV ----------------------------------------------------------------------------

def test_csv_with_every_column(tmp_path):
    f = write(tmp_path, "crm.csv", HEADER + "\n"
              '# exported from the CRM\n'
              '\n'
              'CUST-1,Jane Doe,Jane.Doe@EXAMPLE.com,(312) 555-0100,America/Chicago,USD,en_US,,30,c1;c2 c3,'
              '1 Main St,Suite 2,Springfield,IL,62701,us,no,yes,0,\n'
              'CUST-2,Kenji Sato,kenji@example.jp,03-1234-5678,Asia/Tokyo,JPY,ja_JP,JP123,,,'
              '"1-1 Marunouchi, Chiyoda",,Tokyo,,100-0005,JP,,,,\n')
    customers, rejected = read_rows(f)
    assert rejected == []
    jane, kenji = customers
    assert jane == Customer(
        customerId="CUST-1", name="Jane Doe", email="Jane.Doe@example.com", phone="+13125550100",
        timezone="America/Chicago", currency="USD", locale="en_US", paymentTermsDays=30,
        externalContactIds=["c1", "c2", "c3"],
        postalAddress={"line1": "1 Main St", "line2": "Suite 2", "city": "Springfield", "region": "IL",
                       "postalCode": "62701", "country": "US"},
        preferences={"transactionalEmail": False, "marketingEmail": True, "sms": False, "postal": True},
        source="crm")
    # no country code: read with the address country as region; empty cells are None / defaults
    assert kenji.phone == "+81312345678" and kenji.taxId == "JP123"
    assert kenji.postalAddress.line1 == "1-1 Marunouchi, Chiyoda" and kenji.postalAddress.line2 is None
    assert kenji.paymentTermsDays is None and kenji.externalContactIds == []
    assert kenji.preferences.model_dump() == {"transactionalEmail": True, "marketingEmail": False,
                                              "sms": True, "postal": True}


def test_csv_header_is_case_insensitive_and_columns_optional(tmp_path):
    f = write(tmp_path, "crm.csv", "CUSTOMERID,Email,SMS\nC-1,a@example.com,TRUE\n")
    (c,), rejected = read_rows(f)
    assert rejected == [] and c.customerId == "C-1" and c.preferences.sms is True and c.source == "crm"


def test_csv_unknown_columns_refuse_the_file(tmp_path):
    f = write(tmp_path, "crm.csv", "customerId,name,shoeSize,favouriteColour\nC-1,Jane,42,red\n")
    with pytest.raises(ImportFileError, match="unknown columns: shoeSize, favouriteColour"):
        read_rows(f)


def test_csv_without_header_is_refused_without_echoing_the_row(tmp_path):
    f = write(tmp_path, "crm.csv", "CUST-1,Jane Doe,jane@example.com\n")
    with pytest.raises(ImportFileError) as e:
        read_rows(f)
    assert "not a header" in str(e.value)
    assert "Jane" not in str(e.value) and "jane@example.com" not in str(e.value)


def test_csv_bad_rows_are_rejected_by_line_with_the_field_named(tmp_path):
    rows = [
        HEADER,
        "C-1,Good Row,good@example.com,+13125550100,America/Chicago,USD,,,,,,,,,,US,,,,",
        "C-2,Ann Bad,ann.at.example.com,,,,,,,,,,,,,,,,,",  # line 3: email
        "C-3,Bob Bad,,+1 555 123 4567,,,,,,,,,,,,,,,,",  # line 4: 555 is no US area code
        "C-4,,,,Mars/Olympus_Mons,,,,,,,,,,,,,,,",  # line 5: timezone
        "C-5,,,,,XYZ,,,,,,,,,,,,,,",  # line 6: no ISO 4217 currency
        ",Nobody,,,,,,,,,,,,,,,,,,",  # line 7: no customerId
        "C-1,Jane Again,,,,,,,,,,,,,,,,,,",  # line 8: repeats line 2
        "C-6,,,,,,,,,,,,,,,USA,,,maybe,",  # line 9: country and a boolean
        "C-7,,,,,,,,-3,,,,,,,,,,,",  # line 10: payment terms below 0
        "C-8,too,few,cells",  # line 11
    ]
    f = write(tmp_path, "crm.csv", "\n".join(rows) + "\n")
    customers, rejected = read_rows(f)
    assert [c.customerId for c in customers] == ["C-1"]
    reasons = {r.line: r.reason for r in rejected}
    assert sorted(reasons) == [3, 4, 5, 6, 7, 8, 9, 10, 11]
    assert reasons[3].startswith("email: not a valid address")
    assert reasons[4].startswith("phone: not a valid phone number")
    assert reasons[5].startswith("timezone: not an IANA timezone name")
    assert reasons[6].startswith("currency: must be an ISO 4217 currency code")
    assert reasons[7] == "customerId: required"
    assert reasons[8] == "customerId: repeats line 2"
    assert "address_country: must be a 2-letter country code" in reasons[9]
    assert "sms: not a boolean" in reasons[9]
    assert reasons[10].startswith("paymentTermsDays:")
    assert reasons[11] == "row has 4 cells, the header has 20"
    text = "\n".join(reasons.values())
    for value in ("ann.at.example.com", "Ann", "555 123 4567", "5551234567", "Mars", "Olympus", "XYZ", "USA",
                  "maybe", "Jane", "-3"):
        assert value not in text


def test_csv_quoted_multiline_cell_keeps_the_line_of_the_row_start(tmp_path):
    f = write(tmp_path, "crm.csv", 'customerId,address_line1,email\n'
              'C-1,"line one\nline two",ok@example.com\n'
              'C-2,,broken@\n')
    customers, rejected = read_rows(f)
    assert customers[0].postalAddress.line1 == "line one\nline two"
    assert [(r.line, r.reason.split(" (")[0]) for r in rejected] == [(4, "email: not a valid address")]


# --- JSON lines ----------------------------------------------------------------------

GOOD = {"customerId": "CUST-9", "name": "Grace Hopper", "email": "grace@Example.ORG", "phone": "+44 20 7946 0958",
        "timezone": "Europe/London", "currency": "GBP", "locale": "en_GB",
        "postalAddress": {"line1": "1 Example Road", "city": "London", "postalCode": "SW1A 1AA", "country": "gb"},
        "preferences": {"transactionalEmail": True, "marketingEmail": False, "sms": False, "postal": None},
        "externalContactIds": ["x-1"], "source": "genesys"}


def test_jsonl_good(tmp_path):
    f = write(tmp_path, "crm.jsonl", jsonl("# comment", GOOD, "", {"customerId": " CUST-10 ", "email": ""}))
    (grace, other), rejected = read_rows(f)
    assert rejected == []
    assert grace.email == "grace@example.org" and grace.phone == "+442079460958"
    assert grace.postalAddress.country == "GB" and grace.source == "crm"
    assert grace.preferences.sms is False and grace.preferences.postal is True  # null preference: the default
    assert other.customerId == "CUST-10" and other.email is None


def test_jsonl_detected_by_content(tmp_path):
    f = write(tmp_path, "export.txt", jsonl(GOOD))
    assert [c.customerId for c in read_rows(f)[0]] == ["CUST-9"]


def test_jsonl_bad_rows(tmp_path):
    f = write(tmp_path, "crm.ndjson", jsonl(
        GOOD,
        '{"customerId": "CUST-11", "email": "secret.person@example.com",',  # line 2: truncated
        {**GOOD, "customerId": "CUST-12", "email": "secret.person@@example.com"},
        {**GOOD, "customerId": "CUST-13", "phone": "12"},
        {**GOOD, "customerId": "CUST-14", "timezone": "Europe/Atlantis"},
        {**GOOD, "customerId": "CUST-15", "currency": "Dollar"},
        {**GOOD, "customerId": None},
        {**GOOD, "name": "Grace Twice"},  # line 8: repeats line 1
        '["not", "an", "object"]',
        {**GOOD, "customerId": "CUST-16", "postalAddress": {"country": "Britain"}, "preferences": {"sms": "often"}},
    ))
    customers, rejected = read_rows(f)
    assert [c.customerId for c in customers] == ["CUST-9"]
    reasons = {r.line: r.reason for r in rejected}
    assert reasons[2].startswith("not valid JSON (")
    assert reasons[3].startswith("email: not a valid address")
    assert reasons[4].startswith("phone: not a valid phone number")
    assert reasons[5].startswith("timezone:")
    assert reasons[6].startswith("currency:")
    assert reasons[7] == "customerId: required"
    assert reasons[8] == "customerId: repeats line 1"
    assert reasons[9] == "not a JSON object"
    assert "postalAddress.country: must be a 2-letter country code" in reasons[10]
    assert "preferences.sms:" in reasons[10]
    text = "\n".join(reasons.values())
    for value in ("secret", "person@", "Atlantis", "Dollar", "Grace", "Britain", "often"):
        assert value not in text


def test_email_detail_is_kept_only_when_it_quotes_nothing_of_the_value(tmp_path):
    # email_validator quotes the offending label or address literal in some messages
    f = write(tmp_path, "crm.jsonl", jsonl({"customerId": "A", "email": "janedoe"},
                                           {"customerId": "B", "email": "jane@ab\u0660\u06f0.com"},
                                           {"customerId": "C", "email": "jane@[1.2.3.999]"}))
    _, rejected = read_rows(f)
    assert [r.reason for r in rejected] == ["email: not a valid address (An email address must have an @-sign)",
                                            "email: not a valid address", "email: not a valid address"]


@pytest.mark.parametrize("name,text,message", [
    ("crm.jsonl", "customerId,name\nC-1,Jane\n", "not JSON lines"),
    ("crm.txt", "customerId,name\nC-1,Jane\n", "not JSON lines"),
    ("crm.csv", "", "no header row"),
    ("crm.csv", "customerId,name,customerid\n", "columns given twice: customerId"),
    ("crm.csv", "name,email\n", "no customerId column"),
])
def test_unreadable_files_are_refused(tmp_path, name, text, message):
    with pytest.raises(ImportFileError, match=message):
        read_rows(write(tmp_path, name, text))


def test_not_utf8_and_missing_files_are_refused(tmp_path):
    (tmp_path / "latin1.csv").write_bytes("customerId,name\nC-1,Jos\xe9\n".encode("latin-1"))
    with pytest.raises(ImportFileError, match="not UTF-8"):
        read_rows(tmp_path / "latin1.csv")
    with pytest.raises(ImportFileError, match="cannot read"):
        read_rows(tmp_path / "missing.csv")


# --- the command ----------------------------------------------------------------------

def test_main_dry_run_all_good(tmp_path, capsys):
    f = write(tmp_path, "crm.jsonl", jsonl(GOOD, {"customerId": "CUST-2"}))
    assert main(["import", str(f), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert out == "imported 2 customers, rejected 0 rows (dry run: nothing published)\n"


def test_main_dry_run_with_rejected_rows(tmp_path, capsys):
    f = write(tmp_path, "crm.csv", "customerId,email,phone\nC-1,a@example.com,\nC-2,private@@example.com,\n"
                                   "C-3,,+1 555 000\n")
    assert main(["import", str(f), "--dry-run"]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "imported 1 customers, rejected 2 rows (dry run: nothing published)"
    assert lines[1].startswith("line 3: email: not a valid address (")
    assert lines[2].startswith("line 4: phone: not a valid phone number")
    assert "private" not in "\n".join(lines)


def test_main_unreadable_file_is_status_2(tmp_path, capsys):
    f = write(tmp_path, "crm.csv", "customerId,shoeSize\nC-1,42\n")
    assert main(["import", str(f), "--dry-run"]) == 2
    assert "unknown columns: shoeSize" in capsys.readouterr().err
    assert main(["import", str(tmp_path / "nope.jsonl"), "--dry-run"]) == 2
    assert main(["import"]) == 2  # usage error: a status, not SystemExit
    assert main(["delete", " "]) == 2


def test_main_kafka_unreachable_is_status_3(tmp_path, capsys, monkeypatch):
    f = write(tmp_path, "crm.jsonl", jsonl(GOOD))
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    from runtime.settings import get_settings

    monkeypatch.setattr(get_settings(), "kafka_bootstrap", f"127.0.0.1:{port}")
    assert main(["import", str(f)]) == 3
    assert main(["delete", "CUST-9"]) == 3
    err = capsys.readouterr().err
    assert f"Kafka at 127.0.0.1:{port} is not reachable" in err and "nothing was published" in err


# --- Kafka ------------------------------------------------------------------------------

@pytest.mark.kafka
def test_publish_customers_and_a_tombstone(kafka_bootstrap):
    from aiokafka import AIOKafkaConsumer

    from runtime.topics import assign_from_start

    topic = f"t{uuid.uuid4().hex[:12]}.crm.customers"
    customers = [Customer(customerId="C-1", name="Ann", email="ann@example.com", source="crm"),
                 Customer(customerId="C-2", phone="+13125550100", source="crm")]

    async def run() -> list[tuple[bytes, bytes | None]]:
        n = await publish(customers, bootstrap=kafka_bootstrap, deletes=["C-0"], topic=topic)
        assert n == 3
        consumer = AIOKafkaConsumer(bootstrap_servers=kafka_bootstrap, enable_auto_commit=False)
        await consumer.start()
        try:
            assert await assign_from_start(consumer, topic, wait=10)
            got: list[tuple[bytes, bytes | None]] = []
            for _ in range(50):
                batches = await consumer.getmany(timeout_ms=500)
                got += [(m.key, m.value) for msgs in batches.values() for m in msgs]
                if len(got) >= 3:
                    break
            return got
        finally:
            await consumer.stop()

    got = dict(asyncio.run(run()))
    assert set(got) == {b"C-1", b"C-2", b"C-0"}
    assert got[b"C-0"] is None  # the tombstone
    assert json.loads(got[b"C-1"]) == {"customerId": "C-1", "name": "Ann", "email": "ann@example.com",
                                       "externalContactIds": [],
                                       "preferences": {"transactionalEmail": True, "marketingEmail": False,
                                                       "sms": True, "postal": True},
                                       "source": "crm"}
    assert Customer.model_validate_json(got[b"C-2"]) == customers[1]


@pytest.mark.kafka
def test_a_record_produced_past_the_importer_is_dead_lettered_once_by_a_worker(make_worker, kafka_bootstrap):
    """Issue 17, point 7, in a real worker: the customers agent reads crm.customers in the
    consumer group, so a refused record reaches callbill.dlq once, with the field named."""
    import base64

    from kafka_harness import create_topics, produce_raw, read_json

    w = make_worker()
    create_topics(kafka_bootstrap, w.prefix, w.partitions)
    good = {"customerId": "C-OK", "name": "Jane Doe", "currency": "USD", "timezone": "America/Chicago"}
    bad = {**good, "customerId": "C-BAD", "currency": "EURO"}
    produce_raw(kafka_bootstrap, w.topic("crm.customers"), b"C-OK", json.dumps(good).encode())
    produce_raw(kafka_bootstrap, w.topic("crm.customers"), b"C-BAD", json.dumps(bad).encode())
    w.start()
    [dead] = read_json(kafka_bootstrap, w.topic("callbill.dlq"), until=lambda m: len(m) >= 1, timeout=60)
    assert dead["stage"] == "customers" and dead["reason"].startswith("invalid Customer: currency: ")
    assert base64.b64decode(dead["key"]) == b"C-BAD" and "EURO" not in dead["reason"]
