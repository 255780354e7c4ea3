"""`callbill customers import|delete`: the CRM export into the customer directory.

Why: billing, documents and delivery look customers up in the directory, and the
directory is nothing but the compacted `crm.customers` topic (key customerId, the
latest value wins, a null value deletes the customer). Importing the CRM export is
therefore publishing one record per customer there; deleting is publishing a
tombstone. Re-running an import is harmless: the same keys get the same values.

Rows are validated one by one, so one bad row does not stop an import: the good rows
are published, each bad row is reported with its line number and the field that is
wrong. Reasons never echo the value (the rows hold names, emails and phone numbers,
and the report ends up in terminals and CI logs). Only a file that cannot be read at
all (missing, not UTF-8, not JSON lines, unknown CSV columns) is refused as a whole.

Exit status: 0 all rows imported, 1 some rows rejected (the others were published,
unless --dry-run), 2 the file (or the command line) is unusable, 3 Kafka unreachable.
"""
from __future__ import annotations

from runtime.kafka import client_kwargs  # noqa: E402

import argparse
import asyncio
import csv
import io
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

from pydantic import ValidationError

from schemas.customers import Customer
from schemas.errors import field_errors

TIMEOUT = 15.0  # seconds Kafka may take to start, create the topic, or acknowledge one chunk of sends
CHUNK = 500  # sends awaited together: the timeout bounds a stall, not the length of a big import
SOURCE = "crm"

CSV_COLUMNS = (
    "customerId", "name", "email", "phone", "timezone", "currency", "locale", "taxId", "einvoice", "paymentTermsDays",
    "externalContactIds", "address_line1", "address_line2", "address_city", "address_region",
    "address_postalCode", "address_country", "transactionalEmail", "marketingEmail", "sms", "postal",
)
_CANONICAL = {c.lower(): c for c in CSV_COLUMNS}
_PREFERENCES = ("transactionalEmail", "marketingEmail", "sms", "postal")
_TRUE, _FALSE = {"true", "yes", "1"}, {"false", "no", "0"}

Problem = tuple[str | None, str]  # (field path in the Customer model, or None for the whole row; message)


class ImportFileError(ValueError):
    """The file cannot be imported at all (exit status 2)."""


class KafkaUnavailable(RuntimeError):
    """Kafka did not start, create the topic or acknowledge in time (exit status 3)."""


@dataclass(frozen=True)
class Rejected:
    line: int  # 1-based line of the file where the row starts
    reason: str  # field names and what is wrong; never the value


# --- reading ----------------------------------------------------------------------

def read_rows(path: Path) -> tuple[list[Customer], list[Rejected]]:
    """The valid customers of a CRM export (JSON lines or CSV) and the rejected rows.

    Raises ImportFileError when the file cannot be read at all.
    """
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except OSError as e:
        raise ImportFileError(f"cannot read {path}: {e.strerror or e}") from None
    except UnicodeDecodeError as e:
        raise ImportFileError(f"{path} is not UTF-8 text (byte {e.start})") from None
    if _format(path, text) == "csv":
        records, field_name = _csv_records(text), _csv_field
    else:
        records, field_name = _jsonl_records(text), (lambda f: f)

    customers: list[Customer] = []
    rejected: list[Rejected] = []
    first_line: dict[str, int] = {}
    for line, data, problems in records:
        if data is not None:
            cid = data.get("customerId")
            if isinstance(cid, str) and cid:
                if cid in first_line:
                    problems.append(("customerId", f"repeats line {first_line[cid]}"))
                else:
                    first_line[cid] = line
            customer, problems = _validate(data, problems)
        else:
            customer = None
        if customer is not None:
            customers.append(customer)
        else:
            rejected.append(Rejected(line, "; ".join(
                f"{field_name(f)}: {m}" if f else m for f, m in problems)))
    return customers, rejected


def _format(path: Path, text: str) -> str:
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        return "jsonl"
    if suffix == ".csv":
        return "csv"
    first = next((s for s in (ln.strip() for ln in text.split("\n")) if s and not s.startswith("#")), "")
    if first.startswith("{"):
        return "jsonl"
    raise ImportFileError(f"{path.name}: not JSON lines (.jsonl/.ndjson, one object a line) or CSV (.csv with a header row)")


def _jsonl_records(text: str) -> Iterator[tuple[int, dict | None, list[Problem]]]:
    out: list[tuple[int, dict | None, list[Problem]]] = []
    objects = 0
    for line, raw in enumerate(text.split("\n"), 1):
        s = raw.strip()
        if not s or s.startswith("#"):
            continue
        try:
            obj = json.loads(s)
        except json.JSONDecodeError as e:  # msg and column only: the document itself is personal data
            out.append((line, None, [(None, f"not valid JSON ({e.msg} at column {e.colno})")]))
            continue
        except (ValueError, RecursionError):
            out.append((line, None, [(None, "not valid JSON")]))
            continue
        if not isinstance(obj, dict):
            out.append((line, None, [(None, "not a JSON object")]))
            continue
        objects += 1
        out.append((line, _clean_json(obj), []))
    if out and not objects:
        raise ImportFileError("not JSON lines: no line holds a JSON object")
    return iter(out)


def _clean_json(obj: dict[str, Any]) -> dict[str, Any]:
    """Strip strings, empty strings become None; a null preference means the default."""
    data = {k: _clean(v) for k, v in obj.items()}
    if isinstance(data.get("postalAddress"), dict):
        data["postalAddress"] = {k: _clean(v) for k, v in data["postalAddress"].items()}
    if isinstance(data.get("preferences"), dict):
        data["preferences"] = {k: v for k, v in data["preferences"].items() if v is not None}
    if isinstance(data.get("externalContactIds"), list):
        data["externalContactIds"] = [x for x in map(_clean, data["externalContactIds"]) if x is not None]
    return data


def _clean(v: Any) -> Any:
    if isinstance(v, str):
        return v.strip() or None
    return v


def _csv_records(text: str) -> Iterator[tuple[int, dict | None, list[Problem]]]:
    reader = csv.reader(io.StringIO(text, newline=""))
    header: list[str] | None = None
    out: list[tuple[int, dict | None, list[Problem]]] = []
    end = 0
    try:
        for cells in reader:
            start, end = end + 1, reader.line_num
            if not any(c.strip() for c in cells) or cells[0].lstrip().startswith("#"):
                continue
            if header is None:
                header = _csv_header(cells)
                continue
            if len(cells) != len(header):
                out.append((start, None, [(None, f"row has {len(cells)} cells, the header has {len(header)}")]))
                continue
            out.append((start, *_csv_row(header, cells)))
    except csv.Error as e:
        raise ImportFileError(f"line {reader.line_num}: not valid CSV ({e})") from None
    if header is None:
        raise ImportFileError("the CSV file has no header row")
    return iter(out)


def _csv_header(cells: list[str]) -> list[str]:
    names = [c.strip() for c in cells]
    known = [_CANONICAL.get(n.lower()) for n in names]
    if not any(known):
        # Most likely a data row (an export without header): do not echo it.
        hint = " (is it comma-separated?)" if len(names) == 1 and re.search(r"[;\t|]", names[0]) else ""
        raise ImportFileError(f"the first row is not a header{hint}; expected column names: {', '.join(CSV_COLUMNS)}")
    unknown = [n or f"(unnamed column {i})" for i, (n, k) in enumerate(zip(names, known), 1) if k is None]
    if unknown:
        raise ImportFileError(f"unknown columns: {', '.join(unknown)}; known: {', '.join(CSV_COLUMNS)}")
    twice = sorted({k for k in known if known.count(k) > 1})
    if twice:
        raise ImportFileError(f"columns given twice: {', '.join(twice)}")
    if "customerId" not in known:
        raise ImportFileError("the CSV file has no customerId column")
    return known  # type: ignore[return-value]


def _csv_row(header: list[str], cells: list[str]) -> tuple[dict, list[Problem]]:
    data: dict[str, Any] = {}
    address: dict[str, str] = {}
    preferences: dict[str, bool] = {}
    problems: list[Problem] = []
    for col, cell in zip(header, cells):
        v = cell.strip()
        if not v:
            continue  # empty: None or the model's default
        if col.startswith("address_"):
            address[col.removeprefix("address_")] = v
        elif col in _PREFERENCES:
            if v.lower() in _TRUE:
                preferences[col] = True
            elif v.lower() in _FALSE:
                preferences[col] = False
            else:
                problems.append((f"preferences.{col}", "not a boolean (use true/false, yes/no, 1/0 or leave empty)"))
        elif col == "externalContactIds":
            data[col] = [x for x in re.split(r"[;\s]+", v) if x]
        else:
            data[col] = v
    if address:
        data["postalAddress"] = address
    if preferences:
        data["preferences"] = preferences
    return data, problems


def _csv_field(path: str) -> str:
    """A model field path as the CSV column that feeds it."""
    head, _, rest = path.partition(".")
    if head == "postalAddress" and rest:
        return "address_" + rest
    if head == "preferences" and rest:
        return rest
    return head


# --- validation -------------------------------------------------------------------

def _validate(data: dict[str, Any], problems: list[Problem]) -> tuple[Customer | None, list[Problem]]:
    """The Customer for one row, or None and every problem found in it. The rules are the
    model's (schemas/customers.py), the same for a record produced straight to the topic."""
    problems = list(problems)
    data = {**data, "source": SOURCE}
    if data.get("customerId") is None:
        problems.append(("customerId", "required"))
    try:
        customer = Customer.model_validate(data)
    except ValidationError as e:  # field_errors never includes the input
        seen = {f for f, _ in problems}
        problems += [(x["field"], x["message"]) for x in field_errors(e) if x["field"] not in seen]
        customer = None
    return (None, problems) if problems else (customer, [])


# --- publishing -------------------------------------------------------------------

async def publish(customers: Iterable[Customer], bootstrap: str | None = None, deletes: Iterable[str] = (),
                  topic: str | None = None, timeout: float = TIMEOUT) -> int:
    """Send the customers (then a tombstone per id in `deletes`) to the directory topic.

    The topic is `topic_name("crm.customers")`, created with every callbill topic when
    missing; an explicit `topic` (tests) is created alone, with the same settings.
    Returns the number of records acknowledged by all in-sync replicas. Raises
    KafkaUnavailable when Kafka does not start, create or acknowledge within `timeout`
    seconds (per step / per chunk of sends).
    """
    from aiokafka import AIOKafkaProducer
    from aiokafka.errors import KafkaError

    from runtime.settings import get_settings

    bootstrap = bootstrap or get_settings().kafka_bootstrap
    records = [(c.customerId, c.model_dump_json(exclude_none=True).encode()) for c in customers]
    records += [(cid, None) for cid in deletes]
    sent = 0
    try:
        if topic is None:
            from runtime.topics import ensure_topics, topic_name

            topic = topic_name("crm.customers")
            await asyncio.wait_for(ensure_topics(bootstrap), timeout)
        else:
            await asyncio.wait_for(_ensure_topic(bootstrap, topic), timeout)
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, **client_kwargs())
        try:
            await asyncio.wait_for(producer.start(), timeout)
            for i in range(0, len(records), CHUNK):
                chunk = records[i:i + CHUNK]
                await asyncio.wait_for(_send_all(producer, topic, chunk), timeout)
                sent += len(chunk)
        finally:
            try:
                await asyncio.wait_for(producer.stop(), timeout)
            except (KafkaError, OSError, TimeoutError):
                pass
    except (KafkaError, OSError, TimeoutError) as e:
        why = f"{type(e).__name__}: {e}" if str(e) else f"no answer within {timeout:g} s"
        done = (f"{sent} of {len(records)} records were acknowledged; running the same command again is harmless"
                if sent else "nothing was published")
        raise KafkaUnavailable(f"Kafka at {bootstrap} is not reachable ({why}); {done}") from e
    return sent


async def _send_all(producer, topic: str, records: Sequence[tuple[str, bytes | None]]) -> None:
    futures = [await producer.send(topic, key=key.encode(), value=value) for key, value in records]
    await asyncio.gather(*futures)


async def _ensure_topic(bootstrap: str, topic: str) -> None:
    """Create `topic` like crm.customers (compacted) unless it exists."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic
    from aiokafka.errors import TopicAlreadyExistsError

    from runtime.settings import get_settings
    from runtime.topics import SPECS, topic_config

    s = get_settings()
    spec = next(x for x in SPECS if x.name == "crm.customers")
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **client_kwargs())
    await admin.start()
    try:
        if topic not in set(await admin.list_topics()):
            try:
                await admin.create_topics([NewTopic(topic, spec.partitions or s.topic_partitions, s.topic_replication,
                                                    topic_configs=topic_config(spec))])
            except TopicAlreadyExistsError:
                pass
    finally:
        await admin.close()


# --- command line -----------------------------------------------------------------

def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="callbill customers",
                                description="Import the CRM export into the customer directory (crm.customers).")
    sub = p.add_subparsers(dest="command", required=True, metavar="{import,delete}")
    imp = sub.add_parser("import", help="validate a CRM export (.jsonl/.ndjson or .csv) and publish its customers")
    imp.add_argument("file", type=Path, help="JSON lines (one Customer object a line) or CSV with a header row")
    imp.add_argument("--dry-run", action="store_true", help="validate and report only, publish nothing")
    dele = sub.add_parser("delete", help="delete customers from the directory (publish tombstones)")
    dele.add_argument("customer_ids", nargs="+", metavar="CUSTOMER_ID")
    return p


def main(argv: list[str]) -> int:
    """`callbill customers import FILE [--dry-run]` | `callbill customers delete CUSTOMER_ID...`."""
    try:
        args = _parser().parse_args(argv)
    except SystemExit as e:  # --help (0) or a usage error (2): a status, never an exit from here
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 2)
    if args.command == "delete":
        return _delete(args.customer_ids)
    return _import(args.file, args.dry_run)


def _import(path: Path, dry_run: bool) -> int:
    try:
        customers, rejected = read_rows(path)
    except ImportFileError as e:
        print(f"callbill customers import: {e}", file=sys.stderr)
        return 2
    status = 1 if rejected else 0
    if dry_run:
        print(f"imported {len(customers)} customers, rejected {len(rejected)} rows (dry run: nothing published)")
    else:
        try:
            n = asyncio.run(publish(customers)) if customers else 0
        except KafkaUnavailable as e:
            print(f"callbill customers import: {e}", file=sys.stderr)
            print(f"publish failed: {len(customers)} valid customers, rejected {len(rejected)} rows")
            status = 3
        else:
            print(f"imported {n} customers, rejected {len(rejected)} rows")
    for r in rejected:
        print(f"line {r.line}: {r.reason}")
    return status


def _delete(ids: list[str]) -> int:
    wanted = list(dict.fromkeys(x.strip() for x in ids))
    bad = [i for i, x in enumerate(ids, 1) if not 1 <= len(x.strip()) <= 128]
    if bad:
        print(f"callbill customers delete: customer ids must have 1 to 128 characters (argument {bad[0]})",
              file=sys.stderr)
        return 2
    try:
        n = asyncio.run(publish([], deletes=wanted))
    except KafkaUnavailable as e:
        print(f"callbill customers delete: {e}", file=sys.stderr)
        return 3
    print(f"deleted {n} customers")
    return 0
