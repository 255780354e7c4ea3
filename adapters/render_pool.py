"""Invoice PDFs rendered in a child process, beside the worker's event loop.

fpdf2 is pure Python and CPU-bound. In a thread it holds the GIL against the event loop:
in the bench.e2e profile the render thread and the loop slowed each other down until a
worker delivered about half of what one core renders alone. A child process renders on
its own core while the loop goes on with Kafka, the ERP, S3 and SMTP. The child loads the
fonts once (adapters/fonts.py); a child that dies (killed, out of memory) is replaced and that
one invoice is rendered in a thread instead, so a broken pool never becomes a review item.
A child whose worker is gone (kill -9 included) exits within a second rather than linger.
CALLBILL_RENDER_PROCESSES=0 keeps rendering in a thread.
"""
from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from adapters.fonts import fonts
from domain.invoice_pdf import Buyer, Seller, render
from schemas.invoices import Invoice

log = logging.getLogger("callbill.render")
# fontTools' subsetter logs every step of every PDF at INFO (runtime/logs.py caps it in the worker)
QUIET = ("fontTools", "fpdf", "PIL")


def render_invoice(invoice: Invoice, seller: Seller, buyer: Buyer) -> bytes:
    """Runs in the child (or a thread): the fonts are this process's own, loaded once."""
    return render(invoice, seller, buyer, fonts())


def _exit_with(parent: int) -> None:
    # the child holds both ends of its call queue, so it never sees the worker go by EOF
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(0)


def _warm(parent: int) -> None:
    threading.Thread(target=_exit_with, args=(parent,), name="exit-with-worker", daemon=True).start()
    for name in QUIET:
        logging.getLogger(name).setLevel(logging.WARNING)
    fonts()


class RenderPool:
    """`processes` children (0: a thread of this process) render invoices; built once per worker."""

    def __init__(self, processes: int = 1) -> None:
        self.processes = processes
        self._pool: ProcessPoolExecutor | None = None

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            # spawn, not fork: the worker has threads (Kafka client, renders) a fork would copy mid-flight
            self._pool = ProcessPoolExecutor(max_workers=self.processes, mp_context=multiprocessing.get_context("spawn"),
                                             initializer=_warm, initargs=(os.getpid(),))
        return self._pool

    async def render(self, invoice: Invoice, seller: Seller, buyer: Buyer) -> bytes:
        if self.processes <= 0:
            return await asyncio.to_thread(render_invoice, invoice, seller, buyer)
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor(), render_invoice, invoice, seller,
                                                                    buyer)
        except BrokenProcessPool:
            log.warning("render process died; starting another", extra={"stage": "documents"})
            broken, self._pool = self._pool, None
            if broken is not None:
                broken.shutdown(wait=False, cancel_futures=True)
            return await asyncio.to_thread(render_invoice, invoice, seller, buyer)

    def shutdown(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
