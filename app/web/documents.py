"""Customer-facing document links: signed file downloads and the renew endpoint.

`GET /files/<key>?expires=&sig=` serves a PDF of the file store while its signature is
valid. `GET /invoices/<number>/link?token=` turns the long-lived token from the invoice
email into a fresh signed link (302); an operator (signed in, or a client token with the
operator role) gets one by number alone. Both answer 403 for a bad,
expired or tampered link and say nothing about why beyond that.
"""
from __future__ import annotations

import time
from typing import Any

from faust.web import Request, Response, View

from adapters.storage import FileStore, StorageError
from agents.context import Context
from app.web.auth import Gate
from domain import links

SECURITY_HEADERS = {"Cache-Control": "private, no-store", "X-Content-Type-Options": "nosniff",
                    "Referrer-Policy": "no-referrer"}


def _forbidden(view: View) -> Response:
    return view.json({"error": "forbidden", "message": "this link is not valid (expired or altered)"}, status=403,
                     headers=SECURITY_HEADERS)


def register(app: Any, ctx: Context, gate: Gate) -> None:
    @app.page("/files/{key:.+}")
    class FileView(View):
        async def get(self, request: Request, key: str) -> Response:
            store = ctx.services.store
            if not isinstance(store, FileStore):
                return self.json({"error": "not_found"}, status=404)
            try:
                expires = int(request.query.get("expires", ""))
            except ValueError:
                return _forbidden(self)
            if not links.valid(ctx.settings.link_key, key, expires, request.query.get("sig", ""), time.time()):
                return _forbidden(self)
            try:
                data = await store.get(key)
            except StorageError:
                return self.json({"error": "not_found"}, status=404)
            name = key.rsplit("/", 1)[-1]
            kind = store.meta(key).get("contentType", "application/pdf")  # as stored: the PDF, or the XML beside it
            return self.bytes(data, content_type=kind,
                              headers={**SECURITY_HEADERS, "Content-Disposition": f'inline; filename="{name}"'})

    @app.page("/invoices/{number}/link")
    class RenewView(View):
        async def get(self, request: Request, number: str) -> Response:
            token = request.query.get("token", "")
            key = links.key_of_renew_token(ctx.settings.link_key, token) if token else None
            if key is not None and not (key.endswith(f"/{number}.pdf") or key.endswith(f"/{number}.xml")):
                key = None
            who = await gate.principal(request) if key is None and not token else None
            if who is not None and who.can_act:
                try:
                    key = await ctx.services.store.find(f"{number}.pdf")
                except StorageError:
                    return self.json({"error": "unavailable"}, status=503, headers={"Retry-After": "5"})
                if key is None:
                    return self.json({"error": "not_found"}, status=404)
            if key is None:
                return _forbidden(self)
            try:
                url, expires = await ctx.services.store.link(key, ctx.settings.link_ttl, key.rsplit("/", 1)[-1])
            except StorageError:
                return self.json({"error": "unavailable"}, status=503, headers={"Retry-After": "5"})
            return self.bytes(b"", status=302, headers={**SECURITY_HEADERS, "Location": url})
