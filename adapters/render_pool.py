"""Invoice PDFs rendered in a child process, beside the worker's event loop.

A render is CPU work; in a child process it runs on its own core while the loop goes on
with Kafka, the ERP, S3 and SMTP. The child builds its renderer (adapters/pdf.py: one
typst compiler, fonts read once) when it starts; a child that dies (killed, out of memory)
is replaced and that one invoice is rendered in a thread instead, so a broken pool never
becomes a review item.
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
from pathlib import Path
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from adapters.catalogs import Catalogs
from adapters.pdf import InvoiceRenderer
from domain.invoice_pdf import Buyer, Seller
from schemas.invoices import Invoice

log = logging.getLogger("callbill.render")
_renderers: dict[Path | None, InvoiceRenderer] = {}  # this process's, by template
_catalogs: dict[tuple[str, Path | None], Catalogs] = {}  # this process's, by (default locale, override dir)
Languages = tuple[str, Path | None]  # what a child needs to load the same catalogs as its worker


def renderer_for(template: Path | None) -> InvoiceRenderer:
    if template not in _renderers:
        _renderers[template] = InvoiceRenderer(template)
    return _renderers[template]


def catalogs_for(languages: Languages) -> Catalogs:
    if languages not in _catalogs:
        _catalogs[languages] = Catalogs(default_locale=languages[0], override_dir=languages[1]).load()
    return _catalogs[languages]


def render_invoice(invoice: Invoice | bytes, seller: Seller, buyer: Buyer, template: Path | None = None,
                   languages: Languages = ("en", None), facturx: bytes | None = None) -> bytes:
    """Runs in the child (or a thread): the renderer and catalogs are this process's own, made once.

    The invoice names its locale; the child finds the same catalog the worker chose (the
    fallback chain is a function of the tag and the catalogs). A child gets the invoice as its
    JSON: pickling the model cost the worker four times what dumping it does."""
    if not isinstance(invoice, Invoice):
        invoice = Invoice.model_validate_json(invoice)
    loc = catalogs_for(languages).localizer(invoice.locale)
    return renderer_for(template).render(invoice, seller, buyer, loc, facturx)


def _exit_with(parent: int) -> None:
    # the child holds both ends of its call queue, so it never sees the worker go by EOF
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(0)


def _warm(parent: int, template: Path | None, languages: Languages) -> None:
    threading.Thread(target=_exit_with, args=(parent,), name="exit-with-worker", daemon=True).start()
    catalogs_for(languages)
    renderer_for(template).check()


class RenderPool:
    """`processes` children (0: a thread of this process) render invoices; built once per worker."""

    def __init__(self, processes: int = 1, template: Path | None = None, languages: Languages = ("en", None)) -> None:
        self.processes = processes
        self.template = template
        self.languages = languages
        self._pool: ProcessPoolExecutor | None = None

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            # spawn, not fork: the worker has threads (Kafka client, renders) a fork would copy mid-flight
            self._pool = ProcessPoolExecutor(max_workers=self.processes, mp_context=multiprocessing.get_context("spawn"),
                                             initializer=_warm, initargs=(os.getpid(), self.template, self.languages))
        return self._pool

    async def render(self, invoice: Invoice, seller: Seller, buyer: Buyer, facturx: bytes | None = None) -> bytes:
        args = (invoice, seller, buyer, self.template, self.languages, facturx)
        if self.processes <= 0:
            return await asyncio.to_thread(render_invoice, *args)
        try:
            return await asyncio.get_running_loop().run_in_executor(
                self._executor(), render_invoice, invoice.model_dump_json().encode(), *args[1:])
        except BrokenProcessPool:
            log.warning("render process died; starting another", extra={"stage": "documents"})
            broken, self._pool = self._pool, None
            if broken is not None:
                broken.shutdown(wait=False, cancel_futures=True)
            return await asyncio.to_thread(render_invoice, *args)

    def shutdown(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
