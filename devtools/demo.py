"""`callbill demo`: the sample Genesys events through the real pipeline, and what became of each.

It brings the local stack up (and down again if it started it), runs a real worker with
a topic prefix of its own (so each demo run shows only its own events), posts every file
in samples/ signed to the bridge, and reads the outcome of each from the audit, review
and billable topics.
"""
from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import httpx

from devtools import devstack
from app.cli import sign

REPO = Path(__file__).resolve().parent.parent
SECRET = "demo-webhook-secret"
ADMIN = "demo-admin-token"
CREDITED = "CUST-5550001"  # Kenji Sato: a UBL customer, so his credit note is a UBL CreditNote too
FINAL = {"intake", "assemble:EVENT_RECEIVED"}


def main(argv: list[str]) -> int:
    var = REPO / "var"
    bootstrap = f"127.0.0.1:{devstack._env_int('CALLBILL_DEV_KAFKA_PORT', 9092)}"
    kafka = devstack.LocalKafka(var / "kafka", port=int(bootstrap.rsplit(":", 1)[1]),
                                controller_port=devstack._env_int("CALLBILL_DEV_KAFKA_CONTROLLER_PORT", 9093))
    was_running = kafka.is_running()
    print("== bringing the local stack up (Kafka KRaft, SeaweedFS S3, SMTP sink)")
    if devstack.up(var) != 0:
        return 1
    from devtools.reference_erp import ReferenceErp

    erp = ReferenceErp(token="demo-erp-token", latency_ms=20).start()
    print(f"== reference ERP on {erp.url} (20 ms latency, idempotent on Idempotency-Key)")
    run = f"demo-{time.strftime('%Y%m%d%H%M%S')}"
    port = 6066 if devstack._port_bindable(6066) else 16066
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLBILL_")}
    env.update({
        "CALLBILL_KAFKA_BOOTSTRAP": bootstrap, "CALLBILL_APP_ID": run, "CALLBILL_TOPIC_PREFIX": run + ".",
        "CALLBILL_WEB_PORT": str(port), "CALLBILL_WEBHOOK_SECRET": SECRET, "CALLBILL_TOPIC_PARTITIONS": "2",
        "CALLBILL_DATA_DIR": str(var / "demo" / run), "CALLBILL_LOG_LEVEL": "warn",
        # no Genesys org here: wrap-up code names come from the offline mapping file
        "CALLBILL_WRAPUP_CODES_FILE": str(REPO / "samples" / "directory" / "wrapup-codes.json"),
        "CALLBILL_RATE_CARD": str(REPO / "samples" / "rate-card.yaml"),
        "CALLBILL_SELLER_TAX_ID": "12-3456789",  # the demo seller's (US) tax number: its e-invoices name it
        "CALLBILL_ERP_URL": erp.url, "CALLBILL_ERP_TOKEN": "demo-erp-token",
        "CALLBILL_ADMIN_TOKEN": ADMIN,  # development's shared token: the demo's credit note goes through the API
        "CALLBILL_STORAGE_URL": f"file://{var / 'store'}", "CALLBILL_PUBLIC_URL": f"http://127.0.0.1:{port}",
        "CALLBILL_SMTP_URL": f"smtp://127.0.0.1:{devstack._env_int('CALLBILL_DEV_SMTP_PORT', 2525)}",
    })
    log_path = var / "demo" / f"{run}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    print(f"== starting a worker (app id {run}, web on 127.0.0.1:{port}, log {log_path.relative_to(REPO)})")
    with open(log_path, "wb") as log:
        worker = subprocess.Popen([sys.executable, "-m", "app.cli", "worker"], cwd=REPO, env=env,
                                  stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        url = f"http://127.0.0.1:{port}"
        n = asyncio.run(_load_directory(bootstrap, run + "."))
        print(f"== loaded {n} customers into {run}.crm.customers (samples/directory/customers.jsonl)")
        _wait_ready(url, worker, log_path)
        rows = _post_samples(url)
        needed = Counter(r["key"] for r in rows if r["key"] and r["path"] == "/genesys/webhook")
        needed.update({r["key"]: 1 for r in rows if r["key"] and r["path"] == "/genesys/eventbridge"})
        outcomes = asyncio.run(_outcomes(bootstrap, run + ".", needed))
        _print_table(rows, outcomes)
        forwarded = sorted({k for k, v in _final(outcomes).items() if "intake:FORWARDED" in v})
        billed = asyncio.run(_billing(bootstrap, run + ".", forwarded))
        _print_invoices(forwarded, billed)
        docs = asyncio.run(_documents(bootstrap, run + ".", [k for k in forwarded if k in billed["invoices"]]))
        _print_documents(docs, var)
        sent = asyncio.run(_deliveries(bootstrap, run + ".", list(docs)))
        _print_deliveries(sent, var)
        credited = _credit_note(url, bootstrap, run + ".", billed, var)
        ok = credited and all(r["status"] == 202 for r in rows) and all(
            len(_final(outcomes).get(k, [])) >= c for k, c in needed.items()) and all(
            k in billed["invoices"] for k in forwarded) and all(k in docs for k in billed["invoices"]) and all(
            k in sent["deliveries"] for k in docs)
        return 0 if ok else 1
    finally:
        erp.stop()
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(30)
        except subprocess.TimeoutExpired:
            worker.kill()
        if not was_running:
            print("== stopping the local stack (it was not running before the demo)")
            devstack.down(var)


def _wait_ready(url: str, worker: subprocess.Popen, log_path: Path, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if worker.poll() is not None:
            raise SystemExit(f"the worker exited; see {log_path}")
        try:
            if httpx.get(url + "/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise SystemExit(f"the worker was not ready after {timeout}s; see {log_path}")


def _post_samples(url: str) -> list[dict]:
    rows = []
    for f in sorted((REPO / "samples").glob("*.json")):
        doc = json.loads(f.read_text())
        path = "/genesys/eventbridge" if "detail" in doc else "/genesys/webhook"
        body = json.dumps(doc).encode()
        r = httpx.post(url + path, content=body, timeout=15, headers={
            "Content-Type": "application/json", "X-Callbill-Signature": sign(body, SECRET)})
        key = r.json().get("accepted") if r.status_code == 202 else None
        rows.append({"file": f.name, "path": path, "status": r.status_code, "key": key})
        print(f"   POST {path:22} {f.name:36} -> {r.status_code}")
    return rows


async def _load_directory(bootstrap: str, prefix: str) -> int:
    """The sample customer directory onto crm.customers, as `callbill customers import` does."""
    from app.ops.customers import publish, read_rows
    from runtime.settings import get_settings

    os.environ["CALLBILL_TOPIC_PREFIX"] = prefix
    os.environ["CALLBILL_TOPIC_PARTITIONS"] = "2"
    get_settings.cache_clear()
    customers, rejected = read_rows(REPO / "samples" / "directory" / "customers.jsonl")
    if rejected:
        raise SystemExit(f"the sample directory has rejected rows: {rejected}")
    return await publish(customers, bootstrap)


async def _outcomes(bootstrap: str, prefix: str, needed: Counter, timeout: float = 60) -> dict[str, list[str]]:
    """interactionId -> the decisions made about it, read back from the audit topic."""
    from aiokafka import AIOKafkaConsumer

    from runtime.topics import assign_from_start

    topic = prefix + "callbill.audit"
    c = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await c.start()
    seen: dict[str, list[str]] = {}
    try:
        await assign_from_start(c, topic)
        deadline = time.monotonic() + timeout

        def done() -> bool:
            final = _final(seen)
            return all(len(final.get(k, [])) >= c for k, c in needed.items())
        while time.monotonic() < deadline and not done():
            for msgs in (await c.getmany(timeout_ms=300)).values():
                for m in msgs:
                    a = json.loads(m.value)
                    seen.setdefault(a["interactionId"], []).append(f"{a['stage']}:{a['outcome']}")
    finally:
        await c.stop()
    return seen


def _final(seen: dict[str, list[str]]) -> dict[str, list[str]]:
    """The decisions that end an event's story: the intake's (or the assembler's review)."""
    return {k: [d for d in v if d.startswith("intake:") or d == "assemble:REVIEW"] for k, v in seen.items()}


WHERE = {
    "intake:FORWARDED": "callbill.billable",
    "intake:DUPLICATE": "callbill.audit (counted on the ledger)",
    "intake:NOT_BILLABLE": "callbill.audit",
    "intake:REVIEW": "callbill.review (MISSING_CUSTOMER)",
    "assemble:EVENT_RECEIVED": "pending table (waits for its acw)",
    "assemble:REVIEW": "callbill.review",
}


def _print_table(rows: list[dict], outcomes: dict[str, list[str]]) -> None:
    final = _final(outcomes)
    used: dict[str, int] = {}
    print("\n== what happened to each event")
    print(f"{'sample':36} {'interaction':38} {'outcome':16} topic")
    for r in rows:
        key = r["key"] or "-"
        if r["file"].endswith("customer-end.json"):
            d = "assemble:EVENT_RECEIVED"
        else:
            decisions = final.get(key, [])
            i = used.get(key, 0)
            used[key] = i + 1
            d = decisions[i] if i < len(decisions) else "(no decision yet)"
        outcome = d.split(":", 1)[-1]
        print(f"{r['file']:36} {key:38} {outcome:16} {WHERE.get(d, '-')}")
    print()


async def _billing(bootstrap: str, prefix: str, ids: list[str], timeout: float = 60) -> dict:
    """The invoices issued for `ids` and any billing review, read back from the topics."""
    from aiokafka import AIOKafkaConsumer

    from runtime.topics import assign_from_start

    out: dict = {"invoices": {}, "reviews": {}}
    c = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await c.start()
    try:
        for topic in ("callbill.invoices", "callbill.review"):
            await assign_from_start(c, prefix + topic, wait=10)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and not all(k in out["invoices"] or k in out["reviews"] for k in ids):
                for msgs in (await c.getmany(timeout_ms=300)).values():
                    for m in msgs:
                        doc = json.loads(m.value)
                        if topic == "callbill.invoices" and doc.get("documentType", "invoice") == "invoice":
                            out["invoices"][doc["interactionId"]] = doc
                        elif doc.get("stage") == "billing":
                            out["reviews"][doc["interactionId"]] = doc
    finally:
        await c.stop()
    return out


def _print_invoices(ids: list[str], billed: dict) -> None:
    print("== invoices issued (reference ERP numbers; dates in the customer's timezone; each in its customer's "
          "language)")
    print(f"{'interaction':38} {'invoice':16} {'total':>12} {'cur':4} {'service date':12} {'due':10}  "
          f"{'language':17} timezone")
    for k in ids:
        inv = billed["invoices"].get(k)
        if inv:
            lang = inv.get("locale", "en")
            print(f"{k:38} {inv['invoiceNumber']:16} {inv['total']:>12} {inv['currency']:4} "
                  f"{inv['serviceDate']:12} {inv['dueDate']:10}  {lang + ' (' + _language_name(lang) + ')':17} "
                  f"{inv['timezone']}")
        elif k in billed["reviews"]:
            print(f"{k:38} {'(review)':16} {billed['reviews'][k]['reason']}")
        else:
            print(f"{k:38} (not billed yet)")
    print()


def _language_name(tag: str) -> str:
    """The language's English name, so the report reads for an English speaker."""
    from babel import Locale

    try:
        return Locale.parse(tag.replace("-", "_")).get_language_name("en")
    except ValueError:
        return tag


def _credit_note(url: str, bootstrap: str, prefix: str, billed: dict, var: Path) -> bool:
    """One credit note through the API (what `callbill credit` calls), then its PDF, e-invoice and email."""
    inv = next((i for i in billed["invoices"].values() if i["customerReference"] == CREDITED), None)
    if inv is None:
        print("== credit note: the sample customer's invoice is missing\n")
        return False
    body = {"interactionId": inv["interactionId"], "invoiceNumber": inv["invoiceNumber"],
            "reason": "Goodwill: the call was cut off twice"}
    print("== a credit note (callbill credit " + inv["invoiceNumber"] + " --reason ..., through POST /api/credits)")
    r = httpx.post(url + "/api/credits", params={"wait": 30}, json=body,
                   headers={"Authorization": f"Bearer {ADMIN}"}, timeout=60)
    out = r.json()
    if out.get("status") != "ISSUED":
        print(f"   not issued: {r.status_code} {out}\n")
        return False
    print(f"   {out['creditNumber']} corrects {inv['invoiceNumber']}: {out['total']} {out['currency']} credited "
          f"(issued by the reference ERP; idempotency key {out['idempotencyKey']})")
    number = out["creditNumber"]
    doc = asyncio.run(_first(bootstrap, prefix + "callbill.documents", lambda d: d["invoiceNumber"] == number))
    done = asyncio.run(_first(bootstrap, prefix + "callbill.deliveries", lambda d: d.get("invoiceNumber") == number))
    if doc:
        print(f"   PDF       var/store/{doc['key']}")
        if doc.get("einvoice"):
            print(f"   e-invoice var/store/{doc['einvoice']['key']} (UBL 2.1 CreditNote, type 381, BG-3 names "
                  f"{inv['invoiceNumber']})")
    mail = next((p for p in sorted((var / "mail").glob("*.eml"))
                 if done and done.get("messageId") and done["messageId"].encode() in p.read_bytes()), None)
    if done and mail:
        from email import message_from_binary_file, policy

        with open(mail, "rb") as fh:
            m = message_from_binary_file(fh, policy=policy.default)
        print(f"   email     {str(m['To'])}  \"{str(m['Subject']).strip()}\"  ./{mail.relative_to(REPO)}")
    print(f"   callbill trace {inv['interactionId']} shows the invoice's credited state and the note\n")
    return bool(doc and done)


async def _first(bootstrap: str, topic: str, match, timeout: float = 60) -> dict | None:
    """The first record of `topic` (JSON) that `match`es, waiting up to `timeout` seconds."""
    from aiokafka import AIOKafkaConsumer

    from runtime.topics import assign_from_start

    c = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await c.start()
    try:
        await assign_from_start(c, topic, wait=10)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for msgs in (await c.getmany(timeout_ms=300)).values():
                for m in msgs:
                    doc = json.loads(m.value)
                    if match(doc):
                        return doc
    finally:
        await c.stop()
    return None


async def _documents(bootstrap: str, prefix: str, ids: list[str], timeout: float = 60) -> dict:
    from aiokafka import AIOKafkaConsumer

    from runtime.topics import assign_from_start

    out: dict = {}
    c = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await c.start()
    try:
        await assign_from_start(c, prefix + "callbill.documents", wait=10)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not all(k in out for k in ids):
            for msgs in (await c.getmany(timeout_ms=300)).values():
                for m in msgs:
                    doc = json.loads(m.value)
                    if doc.get("documentType", "invoice") == "invoice":
                        out[doc["interactionId"]] = doc
    finally:
        await c.stop()
    return out


def _print_documents(docs: dict, var: Path) -> None:
    print("== invoice PDFs (signed links valid 24 h while a worker serves them; the files stay in ./var/store)")
    for k, d in sorted(docs.items()):
        print(f"{d['invoiceNumber']:16} {d['size']:>7} bytes  sha256 {d['sha256'][:16]}…  var/store/{d['key']}")
        print(f"{'':16} link  {d['url']}")
        print(f"{'':16} renew {d['renewUrl']}")
        if d.get("einvoice"):
            e = d["einvoice"]
            print(f"{'':16} e-invoice (UBL 2.1, EN 16931) {e['size']} bytes  var/store/{e['key']}")
        if d.get("facturx"):
            print(f"{'':16} e-invoice: the PDF itself is Factur-X (PDF/A-3b, factur-x.xml inside, EN 16931)")
    print()


async def _deliveries(bootstrap: str, prefix: str, ids: list[str], timeout: float = 60) -> dict:
    from aiokafka import AIOKafkaConsumer

    from runtime.topics import assign_from_start

    out: dict = {"deliveries": {}, "reviews": {}, "postal": {}}
    c = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await c.start()
    try:
        for topic, name in (("callbill.deliveries", "deliveries"), ("callbill.review", "reviews"),
                            ("callbill.postal", "postal")):
            await assign_from_start(c, prefix + topic, wait=10)
            deadline = time.monotonic() + (timeout if name == "deliveries" else 2)
            while time.monotonic() < deadline and not (
                    name == "deliveries" and all(k in out["deliveries"] or k in out["reviews"] for k in ids)):
                for msgs in (await c.getmany(timeout_ms=300)).values():
                    for m in msgs:
                        doc = json.loads(m.value)
                        if name != "reviews" or doc.get("stage") in ("delivery", "bounces"):
                            if doc.get("kind", "invoice") == "invoice":
                                out[name][doc["interactionId"]] = doc
    finally:
        await c.stop()
    return out


def _print_deliveries(sent: dict, var: Path) -> None:
    from email import message_from_binary_file, policy

    mails = {}
    for path in sorted((var / "mail").glob("*.eml")):
        with open(path, "rb") as fh:
            m = message_from_binary_file(fh, policy=policy.default)
        mails[str(m["Message-ID"])] = (m, path)
    print("== delivered (one message per invoice; the ledger records intent and outcome around each send)")
    print(f"{'invoice':16} {'channel':8} {'recipient':24} {'subject / job':32} where")
    for k, d in sorted(sent["deliveries"].items(), key=lambda kv: kv[1].get("invoiceNumber") or ""):
        if d["channel"] == "EMAIL" and d.get("messageId") in mails:
            m, path = mails[d["messageId"]]
            print(f"{d['invoiceNumber']:16} {'email':8} {str(m['To']):24} {str(m['Subject']):32} "
                  f"./{path.relative_to(REPO)}")
        elif d["channel"] == "POSTAL":
            job = sent["postal"].get(k, {})
            lines = " / ".join(job.get("recipient", {}).get("lines", [])[-2:])
            print(f"{d['invoiceNumber']:16} {'postal':8} {job.get('recipient', {}).get('name') or '':24} "
                  f"{'print job: ' + lines:32} callbill.postal ({d['providerId']})")
            if job.get("coverText"):
                print(f"{'':16} {'':8} cover text ({job.get('locale', 'en')}): {job['coverText']}")
        else:
            print(f"{d['invoiceNumber']:16} {d['channel'].lower():8} {'':24} {'':32} provider id {d['providerId']}")
    for k, r in sent["reviews"].items():
        print(f"{'(review)':16} {'':8} {'':24} {r['reason']:32} {k}")
    print("\nThe emails are in ./var/mail/ (one .eml each, as the SMTP server received them).\n")
