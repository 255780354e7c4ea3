"""Invoice PDFs: CPU per render for every script and a 200-line invoice, beside invoices
per second through the whole documents stage (render, store in SeaweedFS with SigV4, sign
a link, publish).

    python -m bench.documents            (make bench)
    BENCH_DOCUMENTS=0 python -m bench.documents     (renders only: no broker, no S3)

Each case renders BENCH_RENDERS invoices (different numbers, so nothing is a cache hit
of the whole document) with one renderer, as a render process does, and reports CPU ms
per PDF (process time: typst's threads included). The baseline in the same run is the
floor of any engine: serialize the document's data and deflate it. Environment:
CALLBILL_KAFKA_BOOTSTRAP (else a local broker is started), BENCH_RENDERS (200),
BENCH_DOCUMENTS (500). Results: bench/results/documents-<time>.json.
"""
from __future__ import annotations

import asyncio
import json
import os
import platform
import sys
import tempfile
import time
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "tests" / "support"), str(ROOT / "tests" / "integration")]  # harness and test helpers

from kafka_harness import Worker, create_topics, free_port  # noqa: E402

from adapters.catalogs import Catalogs  # noqa: E402
from adapters.pdf import InvoiceRenderer  # noqa: E402
from runtime.topics import assign_from_start  # noqa: E402
from domain.billing import draft, issue  # noqa: E402
from domain.invoice_pdf import Buyer, Seller, document_data  # noqa: E402
from schemas.invoices import LineItem  # noqa: E402
from domain.pricing import load_rate_card  # noqa: E402
from schemas.customers import Customer  # noqa: E402
from schemas.events import InteractionCompleted  # noqa: E402

RENDERS = int(os.environ.get("BENCH_RENDERS", 200))
DOCS = int(os.environ.get("BENCH_DOCUMENTS", 500))
PARTITIONS = 4
CUSTOMER = Customer(customerId="CUST-BENCH", name="Jane Doe", email="bench@example.com", timezone="America/Chicago",
                    currency="USD", postalAddress={"line1": "1 Main St", "city": "Springfield", "region": "IL",
                                                   "country": "US"})


CARD = load_rate_card(ROOT / "samples" / "rate-card.yaml")
CATALOGS = Catalogs().load()
SELLER = Seller("Callbill Demo Services Ltd", ("1 Example Street", "Springfield, IL 62701"), "US-12-3456789",
                "billing@callbill.example")


def invoice(i: int, customer: Customer = CUSTOMER, loc=None, seller_country: str = "US"):
    inter = InteractionCompleted(interactionId=f"doc-{i:07d}", source="webhook", customerId=customer.customerId,
                                 endedAt=datetime(2026, 11, 24, 22, 20, tzinfo=timezone.utc), durationSeconds=754,
                                 serviceType="Consultation Service - Level 2", wrapupCode="Billable Service")
    return issue(draft(inter, customer, CARD, None, loc, seller_country), f"INV00-{i + 1:06d}", "INV00",
                 datetime(2026, 11, 24, 22, 21, tzinfo=timezone.utc))


# invoices in the customer's language (issue 18): (customer, seller) for German B2B with reverse
# charge, Japanese (the qualified invoice's registration number and tax per rate), Arabic (right to left)
LANGUAGE_CASES = {
    "de invoice": (Customer(customerId="CUST-DE", name="Alpen Consulting GmbH", locale="de-AT", currency="EUR",
                            taxId="ATU13585627", timezone="Europe/Vienna",
                            postalAddress={"line1": "Ring 2", "city": "Wien", "country": "AT"}),
                   Seller("Callbill GmbH", ("Hauptstraße 1", "10115 Berlin"), "DE136695976", "billing@callbill.example",
                          country="DE")),
    "ja invoice": (Customer(customerId="CUST-JA", name="山田太郎", locale="ja-JP", currency="JPY", timezone="Asia/Tokyo",
                            postalAddress={"line1": "丸の内1-1", "city": "千代田区", "country": "JP"}),
                   Seller("コールビル株式会社", ("東京都千代田区丸の内1-1",), "T5835678256246", "billing@callbill.example",
                          country="JP")),
    "ar invoice": (Customer(customerId="CUST-AR", name="فاطمة علي", locale="ar-KW", currency="KWD",
                            timezone="Asia/Kuwait", postalAddress={"line1": "شارع الخليج", "city": "الكويت",
                                                                   "country": "KW"}), SELLER),
}
NAMES = {"latin": "Jane Doe", "cjk": "山田太郎", "greek": "Γιώργος Παπαδόπουλος", "cyrillic": "Иван Петров",
         "arabic": "فاطمة علي"}
MIX = {"latin": 0.6, "cjk": 0.2, "arabic": 0.1, "greek": 0.05, "cyrillic": 0.05}  # the issue's customer mix


def cpu_ms(fn, items) -> float:
    t0 = time.process_time()
    for x in items:
        fn(x)
    return 1000 * (time.process_time() - t0) / len(items)


def render_rate(n: int, buyer_name: str = "Jane Doe") -> dict:
    """One-page renders on one core (the ceiling bench.e2e compares the pipeline with)."""
    renderer = InvoiceRenderer()
    invoices = [invoice(i) for i in range(n)]
    buyer = Buyer(buyer_name, ("1 Main St",), "CUST-BENCH")
    renderer.render(invoices[0], SELLER, buyer)
    ms = cpu_ms(lambda inv: renderer.render(inv, SELLER, buyer), invoices)
    return {"pdfs": n, "cpu_ms_per_pdf": round(ms, 2), "per_second_one_core": round(1000 / ms, 1)}


def render_cases(n: int) -> dict:
    import hashlib
    import io
    import zlib

    from pypdf import PdfReader

    renderer = InvoiceRenderer()
    base = [invoice(i) for i in range(n)]
    lines = [LineItem(description=f"Call segment {k}", quantity=1, unit="minute", unitPrice=Decimal("1.00"),
                      amount=Decimal("1.00")) for k in range(200)]
    long = [inv.model_copy(update={"lineItems": lines}) for inv in base[:max(5, n // 20)]]
    cases: dict[str, dict] = {}
    for name, buyer_name in [*NAMES.items(), ("200 lines", "Jane Doe")]:
        invoices = long if name == "200 lines" else base
        buyer = Buyer(buyer_name, ("1 Main St", "Springfield"), "CUST-BENCH")
        renderer.render(invoices[0], SELLER, buyer)  # warm: fonts read, template compiled
        ms = cpu_ms(lambda inv: renderer.render(inv, SELLER, buyer), invoices)
        pdf = renderer.render(invoices[-1], SELLER, buyer)
        floor = cpu_ms(lambda inv: zlib.compress(json.dumps(document_data(inv, SELLER, buyer)).encode(), 6), invoices)
        cases[name] = {"renders": len(invoices), "cpu_ms_per_pdf": round(ms, 2), "bytes": len(pdf),
                       "pages": len(PdfReader(io.BytesIO(pdf)).pages),
                       "deterministic": hashlib.sha256(pdf).digest() == hashlib.sha256(
                           renderer.render(invoices[-1], SELLER, buyer)).digest(),
                       "baseline_cpu_ms": round(floor, 3), "ratio_to_baseline": round(ms / floor, 1)}
        print(f"  {name:10} {cases[name]}")
    # the language cases against the English one in alternating rounds, so a change in the
    # machine's load during the run falls on every case alike; the median round counts
    english_cust = CUSTOMER
    runs = {"en invoice": (english_cust, SELLER), **LANGUAGE_CASES}
    prepared = {}
    for name, (cust, seller) in runs.items():
        loc = CATALOGS.localizer(cust.locale)
        a = cust.postalAddress
        buyer = Buyer(cust.name, (a.line1, a.city), cust.customerId, a.country)
        invoices = [invoice(i, cust, loc, seller.country) for i in range(n)]
        renderer.render(invoices[0], seller, buyer, loc)
        prepared[name] = (invoices, seller, buyer, loc)
    rounds, per = 5, max(10, n // 5)
    samples: dict[str, list[float]] = {k: [] for k in runs}
    for r in range(rounds):
        for name, (invoices, seller, buyer, loc) in prepared.items():
            chunk = invoices[r * per % len(invoices):][:per] or invoices[:per]
            samples[name].append(cpu_ms(lambda inv: renderer.render(inv, seller, buyer, loc), chunk))
    median = {k: sorted(v)[len(v) // 2] for k, v in samples.items()}
    for name, (invoices, seller, buyer, loc) in prepared.items():
        pdf = renderer.render(invoices[-1], seller, buyer, loc)
        floor = cpu_ms(lambda inv: zlib.compress(json.dumps(document_data(inv, seller, buyer, loc)).encode(), 6),
                       invoices)
        cases[name] = {"renders": rounds * per, "locale": loc.tag, "cpu_ms_per_pdf": round(median[name], 2),
                       "rounds_ms": [round(x, 2) for x in samples[name]], "bytes": len(pdf),
                       "pages": len(PdfReader(io.BytesIO(pdf)).pages),
                       "deterministic": pdf == renderer.render(invoices[-1], seller, buyer, loc),
                       "baseline_cpu_ms": round(floor, 3), "ratio_to_baseline": round(median[name] / floor, 1)}
        print(f"  {name:10} {cases[name]}")
    mix = sum(cases[k]["cpu_ms_per_pdf"] * w for k, w in MIX.items())
    cases["e-invoices"] = einvoice_cost(n)
    print(f"  {'e-invoices':10} {cases['e-invoices']}")
    latin = cases["latin"]["cpu_ms_per_pdf"]
    return {"cases": cases, "customer_mix_cpu_ms_per_pdf": round(mix, 2),
            "cjk_vs_latin": round(cases["cjk"]["cpu_ms_per_pdf"] / latin, 2),
            "languages_vs_english": {k: round(cases[k]["cpu_ms_per_pdf"] / cases["en invoice"]["cpu_ms_per_pdf"], 2)
                                     for k in LANGUAGE_CASES}}


def einvoice_cost(n: int) -> dict:
    """Issue 19, goal 9: what e-invoice output adds per invoice: the UBL file beside the PDF, the CII
    XML, and the Factur-X PDF (PDF/A-3b with the CII inside) against the plain PDF."""
    from adapters.einvoice_xml import cii, ubl
    from domain.einvoice import Party, from_invoice

    cust, seller = LANGUAGE_CASES["de invoice"]
    loc = CATALOGS.localizer(cust.locale)
    invoices = [invoice(i, cust, loc, seller.country) for i in range(n)]
    sp = Party(seller.name, seller.address, seller.country, vat_id=seller.tax_id, email=seller.contact)
    bp = Party(cust.name, (cust.postalAddress.line1,), cust.postalAddress.country, cust.postalAddress.city,
               vat_id=invoices[0].buyerTaxId)
    xml = ubl(from_invoice(invoices[0], sp, bp))
    ms = cpu_ms(lambda inv: ubl(from_invoice(inv, sp, bp)), invoices)
    cii_ms = cpu_ms(lambda inv: cii(from_invoice(inv, sp, bp)), invoices)
    # Factur-X: the same PDF as PDF/A-3b with the CII inside, against the plain PDF, alternating
    renderer = InvoiceRenderer()
    a = cust.postalAddress
    buyer = Buyer(cust.name, (a.line1, a.city), cust.customerId, a.country)
    xmls = [cii(from_invoice(inv, sp, bp)) for inv in invoices]
    renderer.render(invoices[0], seller, buyer, loc, facturx=xmls[0])
    per = max(10, n // 5)
    plain, fx = [], []
    for r in range(5):
        idx = list(range(r * per % n, min(n, r * per % n + per)))
        plain.append(cpu_ms(lambda i: renderer.render(invoices[i], seller, buyer, loc), idx))
        fx.append(cpu_ms(lambda i: renderer.render(invoices[i], seller, buyer, loc, facturx=xmls[i]), idx))
    med = lambda v: sorted(v)[len(v) // 2]  # noqa: E731
    pdf = renderer.render(invoices[0], seller, buyer, loc, facturx=xmls[0])
    return {"files": n, "ubl_cpu_ms_per_file": round(ms, 3), "ubl_bytes": len(xml),
            "cii_cpu_ms_per_file": round(cii_ms, 3),
            "facturx_pdf_cpu_ms": round(med(fx), 2), "plain_pdf_cpu_ms": round(med(plain), 2),
            "facturx_extra_cpu_ms": round(med(fx) - med(plain), 2), "facturx_bytes": len(pdf),
            "rounds_plain_ms": [round(x, 2) for x in plain], "rounds_facturx_ms": [round(x, 2) for x in fx]}


async def stage_rate(bootstrap: str, tmp: Path, s3, n: int) -> dict:
    w = Worker(bootstrap=bootstrap, tmp=tmp, partitions=PARTITIONS, extra_env={
        "CALLBILL_LOG_LEVEL": "warn", "CALLBILL_STORAGE_URL": f"s3://{s3.bucket}/bench{time.time_ns()}",
        "CALLBILL_S3_ENDPOINT_URL": s3.endpoint_url, "AWS_ACCESS_KEY_ID": s3.access_key,
        "AWS_SECRET_ACCESS_KEY": s3.secret_key})
    await asyncio.to_thread(create_topics, bootstrap, w.prefix, PARTITIONS)
    p = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await p.start()
    try:
        await p.send_and_wait(w.topic("crm.customers"), CUSTOMER.model_dump_json().encode(), key=b"CUST-BENCH")
        futs = [await p.send(w.topic("callbill.invoices"), invoice(i).model_dump_json().encode(),
                             key=f"doc-{i:07d}".encode()) for i in range(n)]
        await asyncio.gather(*futs)
    finally:
        await p.stop()
    await asyncio.to_thread(w.start)
    try:
        c = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
        await c.start()
        await assign_from_start(c, w.topic("callbill.documents"), wait=60)
        stored: dict[str, datetime] = {}
        deadline = time.monotonic() + 900
        while len(stored) < n and time.monotonic() < deadline:
            for msgs in (await c.getmany(timeout_ms=500)).values():
                for m in msgs:
                    d = json.loads(m.value)
                    stored.setdefault(d["interactionId"], datetime.fromisoformat(d["time"]))
        await c.stop()
    finally:
        w.stop()
    times = sorted(stored.values())
    span = (times[-1] - times[0]).total_seconds() if len(times) > 1 else float("nan")
    return {"documents": len(times), "seconds": round(span, 2), "per_second": round(len(times) / span, 1)}


async def main() -> int:
    from devtools.devstack import LocalKafka, LocalS3

    print("render, one core (CPU ms per PDF)")
    renders = render_cases(RENDERS)
    print(f"  customer mix {renders['customer_mix_cpu_ms_per_pdf']} ms, CJK/Latin {renders['cjk_vs_latin']}, "
          f"languages/English {renders['languages_vs_english']}")
    result = {
        "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "params": {"renders": RENDERS, "documents": DOCS, "partitions": PARTITIONS}, "render": renders,
    }
    if DOCS <= 0:
        return write(result)
    tmp = Path(tempfile.mkdtemp(prefix="callbill-bench-"))
    bootstrap = os.environ.get("CALLBILL_KAFKA_BOOTSTRAP")
    kafka = None
    if not bootstrap:
        kafka = LocalKafka(tmp / "kafka", port=free_port(), controller_port=free_port())
        await asyncio.to_thread(kafka.start)
        bootstrap = kafka.bootstrap
    from test_documents import s3_port

    s3 = LocalS3(tmp / "s3", port=s3_port())
    await asyncio.to_thread(s3.start)
    try:
        stage = await stage_rate(bootstrap, tmp, s3, DOCS)
        print(f"documents stage to S3      {stage}")
        result["documents_stage_s3"] = stage
        result["ratios"] = {"stage_vs_render_one_core": round(
            stage["per_second"] / (1000 / renders["cases"]["latin"]["cpu_ms_per_pdf"]), 2)}
        print(f"ratios {result['ratios']}")
        return write(result)
    finally:
        await asyncio.to_thread(s3.stop)
        if kafka:
            await asyncio.to_thread(kafka.stop)


def write(result: dict) -> int:
    out = ROOT / "bench" / "results" / f"documents-{time.strftime('%Y%m%dT%H%M%S')}.json"
    out.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    print(f"wrote {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
