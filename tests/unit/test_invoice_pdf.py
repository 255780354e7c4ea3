"""The invoice PDF: content, any script, long invoices, identical bytes on every render."""
from __future__ import annotations

import hashlib
import io
import re
from datetime import datetime, timezone
from decimal import Decimal

from pypdf import PdfReader

from adapters.pdf import InvoiceRenderer, RenderError
from domain.billing import draft, issue
from domain.invoice_pdf import Buyer, Seller
from domain.pricing import LineItem
from test_domain_billing import CARD, customer, interaction

SELLER = Seller("Callbill Demo Services GmbH", ("Musterstraße 1", "10115 Berlin", "Germany"), "DE123456789",
                "billing@callbill.example", "Bank transfer to IBAN DE00 0000 0000 0000 0000 00.")


RENDERER = InvoiceRenderer()


def render(inv, seller, buyer) -> bytes:
    return RENDERER.render(inv, seller, buyer)


def invoice(**over):
    d = draft(interaction(), customer(), CARD, None)
    inv = issue(d, "INV03-000042", "INV03", datetime(2027, 1, 1, 5, 0, tzinfo=timezone.utc))
    return inv.model_copy(update=over)


def text_of(pdf: bytes) -> list[str]:
    # pypdf puts a NUL before each glyph of the CFF (CJK) font it extracts
    return [re.sub(r"\s+", " ", p.extract_text().replace("\x00", "")) for p in PdfReader(io.BytesIO(pdf)).pages]


def fonts_of(pdf: bytes) -> list[str]:
    """The base names of the fonts embedded (subset: a six-letter tag before the name)."""
    names = []
    for page in PdfReader(io.BytesIO(pdf)).pages:
        for font in page["/Resources"]["/Font"].values():
            names.append(str(font.get_object()["/BaseFont"]))
    return sorted(set(names))


def test_the_pdf_holds_number_totals_and_local_dates():
    pdf = render(invoice(), SELLER, Buyer("Jane Doe", ("1 Main St", "Springfield, IL 62701"), "CUST-1"))
    assert pdf.startswith(b"%PDF-")
    (page,) = text_of(pdf)
    for expected in ("INV03-000042", "$34.53", "$32.50", "$2.03", "Illinois sales tax 6.25% on $32.50",
                     "Dec 31, 2026",  # ended 2026-12-31 23:30 UTC: still the 31st in Chicago
                     "Jan 30, 2027", "America/Chicago", "Jane Doe", "Musterstraße 1", "DE123456789", "Page 1 of 1"):
        assert expected in page, expected


def test_an_arabic_name_is_shaped_and_extractable():
    pdf = render(invoice(), SELLER, Buyer("فاطمة علي", ("Kuwait City",), "CUST-1"))
    assert any("IBMPlexSansArabic" in f for f in fonts_of(pdf)), fonts_of(pdf)
    # pypdf extracts right-to-left text in visual order; the letters are all there
    assert set("فاطمةعلي") <= set(text_of(pdf)[0])


def test_names_in_any_script_render():
    pdf = render(invoice(), SELLER, Buyer("Zoë Ångström 山田太郎", ("Ελληνικά 1", "Москва"), "CUST-1"))
    page = text_of(pdf)[0].replace(" ", "")
    assert "ZoëÅngström山田太郎" in page and "Ελληνικά" in page and "Москва" in page
    fonts_used = fonts_of(pdf)
    assert any("NotoSansCJK" in f for f in fonts_used) and any(f.endswith("+NotoSans") or "NotoSans-" in f or f.endswith("NotoSans")
                                                               for f in fonts_used), fonts_used
    latin = render(invoice(), SELLER, Buyer("Jane Doe", (), "CUST-1"))
    assert not any("CJK" in f for f in fonts_of(latin))  # the fallback only where the text needs it


def test_a_200_line_invoice_flows_over_pages_with_repeated_headings():
    lines = [LineItem(description=f"Call segment {i}", quantity=1, unit="minute", unitPrice=Decimal("1.00"),
                      amount=Decimal("1.00")) for i in range(200)]
    pdf = render(invoice(lineItems=lines), SELLER, Buyer("Jane Doe", (), "CUST-1"))
    pages = text_of(pdf)
    assert len(pages) >= 4
    for n, page in enumerate(pages, 1):
        assert f"Page {n} of {len(pages)}" in page
        if "Call segment" in page:  # heading row on every page the table spans
            assert "Description Qty Unit Unit price Amount" in page
    assert "Call segment 199" in "".join(pages[-2:]) and "Total due" in "".join(pages[-2:])
    assert "Payment terms" in pages[-1]


def test_an_issue_time_with_microseconds_renders():  # as billing stamps it
    inv = invoice(issuedAt=datetime(2027, 1, 1, 5, 0, 0, 123456, tzinfo=timezone.utc))
    assert render(inv, SELLER, Buyer("Jane Doe", (), "CUST-1")).startswith(b"%PDF-")


def test_rendering_twice_gives_identical_bytes():
    buyer = Buyer("Zoë Ångström 山田太郎", ("1 Main St",), "CUST-1")
    a, b = render(invoice(), SELLER, buyer), render(invoice(), SELLER, buyer)
    assert hashlib.sha256(a).hexdigest() == hashlib.sha256(b).hexdigest()
    other = render(invoice(invoiceNumber="INV03-000043"), SELLER, buyer)
    assert other != a


def test_zero_decimal_and_three_decimal_currencies_print_their_own_precision():
    jp = draft(interaction(), customer(currency="JPY", timezone="Asia/Tokyo",
                                       postalAddress={"line1": "x", "country": "JP"}), CARD, None)
    pdf = render(issue(jp, "INV01-000001", "INV01", datetime(2027, 1, 1, tzinfo=timezone.utc)), SELLER,
                 Buyer("Kenji Sato", (), "CUST-1"))
    page = text_of(pdf)[0]
    assert "¥5,005" in page and "Jan 1, 2027" in page  # Tokyo: already the new year


def test_the_render_process_gives_the_same_bytes_and_a_dead_one_is_replaced():
    """PDFs render in a child process (adapters/render_pool.py); one killed mid-life costs nothing:
    that invoice renders in a thread, the next in a new child, all byte-identical."""
    import asyncio

    from adapters.render_pool import RenderPool

    render_pool = RenderPool(1)
    inv = invoice()
    seller, buyer = Seller("Callbill Demo Services Ltd", ("1 Example Street",)), Buyer("Jane Doe", ("1 Main St",))
    local = render(inv, seller, buyer)

    async def go() -> list[bytes]:
        first = await render_pool.render(inv, seller, buyer)
        children = list(render_pool._pool._processes.values())
        assert children and all(p.pid for p in children)
        for p in children:
            p.kill()
            p.join(10)
        after_death = await render_pool.render(inv, seller, buyer)
        fresh = await render_pool.render(inv, seller, buyer)
        assert render_pool._pool is not None and all(p.is_alive() for p in render_pool._pool._processes.values())
        return [first, after_death, fresh]

    try:
        assert asyncio.run(go()) == [local] * 3
    finally:
        render_pool.shutdown()


def test_a_render_process_does_not_outlive_its_worker(tmp_path):
    """kill -9 of a worker (the chaos run does it three times) must not leave its render child behind."""
    import os
    import signal
    import subprocess
    import sys
    import time

    script = tmp_path / "worker.py"
    script.write_text(
        "import asyncio, time\n"
        "from adapters.render_pool import RenderPool\n"
        "from test_invoice_pdf import invoice\n"
        "from domain.invoice_pdf import Buyer, Seller\n"
        "if __name__ == '__main__':  # spawn imports this module again in the child\n"
        "    render_pool = RenderPool(1)\n"
        "    asyncio.run(render_pool.render(invoice(), Seller('S', ('1 St',)), Buyer('B', ('2 St',))))\n"
        "    print(*[p.pid for p in render_pool._pool._processes.values()], flush=True)\n"
        "    time.sleep(600)\n")
    here = os.path.dirname(__file__)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([here, os.path.dirname(os.path.dirname(here)), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True, env=env)
    try:
        children = [int(x) for x in proc.stdout.readline().split()]
        assert children
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)

        def alive(pid: int) -> bool:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return False
            with open(f"/proc/{pid}/stat") as f:  # a zombie waiting for init to reap it is gone
                return f.read().rsplit(")", 1)[1].split()[0] != "Z"

        deadline = time.monotonic() + 10
        while any(alive(p) for p in children) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not any(alive(p) for p in children), "the render child outlived its worker"
    finally:
        proc.kill()


def test_fonts_are_embedded_as_subsets_and_a_page_stays_small():
    pdf = render(invoice(), SELLER, Buyer("Jane Doe", ("1 Main St",), "CUST-1"))
    reader = PdfReader(io.BytesIO(pdf))
    for page in reader.pages:
        for font in page["/Resources"]["/Font"].values():
            font = font.get_object()
            assert re.fullmatch(r"/[A-Z]{6}\+.+", str(font["/BaseFont"])), font["/BaseFont"]  # a subset
            descendant = font["/DescendantFonts"][0].get_object() if "/DescendantFonts" in font else font
            descriptor = descendant["/FontDescriptor"].get_object()
            assert any(k in descriptor for k in ("/FontFile", "/FontFile2", "/FontFile3"))  # embedded
    assert len(pdf) <= 30_000, len(pdf)


def test_the_template_is_a_file_an_operator_can_replace(tmp_path):
    own = tmp_path / "invoice.typ"
    own.write_text('#let d = json(bytes(sys.inputs.data))\n#set text(font: "Noto Sans")\nRechnung #d.title\n')
    pdf = InvoiceRenderer(own).render(invoice(), SELLER, Buyer("Jane Doe", (), "CUST-1"))
    assert "Rechnung Invoice INV03-000042" in text_of(pdf)[0]
    broken = tmp_path / "broken.typ"
    broken.write_text("#let d = json(bytes(sys.inputs.data))\n#d.nonexistent\n")
    try:
        InvoiceRenderer(broken).check()
    except RenderError as e:
        assert "nonexistent" in str(e)
    else:
        raise AssertionError("a broken template was accepted")
    try:
        InvoiceRenderer(tmp_path / "missing.typ").check()
    except RenderError as e:
        assert "does not exist" in str(e)
    else:
        raise AssertionError("a missing template was accepted")
