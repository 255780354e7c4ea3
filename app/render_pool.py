"""Invoice PDFs rendered in a child process, beside the worker's event loop.

fpdf2 is pure Python and CPU-bound. In a thread it holds the GIL against the event loop:
in the bench.e2e profile the render thread and the loop slowed each other down until a
worker delivered about half of what one core renders alone. A child process renders on
its own core while the loop goes on with Kafka, the ERP, S3 and SMTP. The child loads the
fonts once (app/fonts.py); a child that dies (killed, out of memory) is replaced and that
one invoice is rendered in a thread instead, so a broken pool never becomes a review item.
A child whose worker is gone (kill -9 included) exits within a second rather than linger.
CALLBILL_RENDER_PROCESSES=0 keeps rendering in a thread.
"""
from __future__ import annotations

import asyncio
import multiprocessing
import os
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from app.fonts import fonts
from app.logs import get_logger
from app.settings import get_settings
from domain.invoice_pdf import Buyer, Seller, render
from schemas.invoices import Invoice

log = get_logger("render")
_pool: ProcessPoolExecutor | None = None


def render_invoice(invoice: Invoice, seller: Seller, buyer: Buyer) -> bytes:
    """Runs in the child (or a thread): the fonts are this process's own, loaded once."""
    return render(invoice, seller, buyer, fonts())


def _exit_with(parent: int) -> None:
    # the child holds both ends of its call queue, so it never sees the worker go by EOF
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(0)


def _warm(parent: int) -> None:
    from app.logs import configure_logging

    threading.Thread(target=_exit_with, args=(parent,), name="exit-with-worker", daemon=True).start()
    configure_logging(get_settings().log_level)
    fonts()


def _executor() -> ProcessPoolExecutor:
    global _pool
    if _pool is None:
        # spawn, not fork: the worker has threads (Kafka client, renders) a fork would copy mid-flight
        _pool = ProcessPoolExecutor(max_workers=get_settings().render_processes,
                                    mp_context=multiprocessing.get_context("spawn"), initializer=_warm,
                                    initargs=(os.getpid(),))
    return _pool


async def render_pdf(invoice: Invoice, seller: Seller, buyer: Buyer) -> bytes:
    global _pool
    if get_settings().render_processes <= 0:
        return await asyncio.to_thread(render_invoice, invoice, seller, buyer)
    try:
        return await asyncio.get_running_loop().run_in_executor(_executor(), render_invoice, invoice, seller, buyer)
    except BrokenProcessPool:
        log.warning("render process died; starting another", extra={"stage": "documents"})
        broken, _pool = _pool, None
        if broken is not None:
            broken.shutdown(wait=False, cancel_futures=True)
        return await asyncio.to_thread(render_invoice, invoice, seller, buyer)


def shutdown() -> None:
    global _pool
    if _pool is not None:
        _pool.shutdown(wait=False, cancel_futures=True)
        _pool = None
