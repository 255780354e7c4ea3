"""The same render cases as bench.documents, through the fpdf2 renderer callbill used up to
commit 4287ac7: the before figure of the typst change, measured on the same machine.

    git worktree add /tmp/callbill-fpdf2 4287ac7
    pip install --target /tmp/fpdf2-libs fpdf2==2.8.9 fonttools==4.68.0 pillow==13.0.0 defusedxml==0.7.1
    PYTHONPATH=/tmp/fpdf2-libs:/tmp/callbill-fpdf2 python bench/pdf_before.py

BENCH_RENDERS (20; a CJK render took most of a second). Prints JSON; the figures are in
BENCHMARKS.md beside bench.documents' from the same session.
"""
from __future__ import annotations

import json
import os
import time
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path

from adapters.fonts import fonts  # the old tree's: fpdf2's font set
from domain.billing import draft, issue
from domain.invoice_pdf import Buyer, Seller, render
from domain.pricing import load_rate_card
from schemas.customers import Customer
from schemas.events import InteractionCompleted
from schemas.invoices import LineItem

N = int(os.environ.get("BENCH_RENDERS", 20))
NAMES = {"latin": "Jane Doe", "cjk": "山田太郎", "greek": "Γιώργος Παπαδόπουλος", "cyrillic": "Иван Петров",
         "arabic": "فاطمة علي"}
ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    card = load_rate_card(ROOT / "samples" / "rate-card.yaml")
    customer = Customer(customerId="CUST-BENCH", name="Jane Doe", email="bench@example.com",
                        timezone="America/Chicago", currency="USD")
    at = datetime(2026, 11, 24, 22, 21, tzinfo=timezone.utc)
    base = [issue(draft(InteractionCompleted(
        interactionId=f"doc-{i:07d}", source="webhook", customerId="CUST-BENCH", endedAt=at, durationSeconds=754,
        serviceType="Consultation Service - Level 2", wrapupCode="Billable Service"), customer, card, None),
        f"INV00-{i + 1:06d}", "INV00", at) for i in range(N)]
    lines = [LineItem(description=f"Call segment {k}", quantity=1, unit="minute", unitPrice=Decimal("1.00"),
                      amount=Decimal("1.00")) for k in range(200)]
    seller = Seller("Callbill Demo Services Ltd", ("1 Example Street", "Springfield, IL 62701"), "US-12-3456789",
                    "billing@callbill.example")
    f = fonts()
    out = {}
    for name, buyer_name in [*NAMES.items(), ("200 lines", "Jane Doe")]:
        invoices = [inv.model_copy(update={"lineItems": lines}) for inv in base[:5]] if name == "200 lines" else base
        buyer = Buyer(buyer_name, ("1 Main St", "Springfield"), "CUST-BENCH")
        render(invoices[0], seller, buyer, f)
        t0 = time.process_time()
        for inv in invoices:
            pdf = render(inv, seller, buyer, f)
        out[name] = {"renders": len(invoices), "cpu_ms_per_pdf": round(1000 * (time.process_time() - t0) / len(invoices), 1),
                     "bytes": len(pdf)}
        print(name, out[name], flush=True)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
