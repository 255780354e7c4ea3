"""Credit notes for operators: `POST /api/credits` (what `callbill credit` calls) and the /credits page.

Operator role only, like review actions; the audit trail records the verified principal.
The request is published on callbill.credit-requests under the invoice's interactionId, and
the answer is read back from that key's partition of callbill.credit-notes, for at most
`wait` seconds: 201 issued, 200 the same key issued it before, 422 refused (with the reason
code), 202 still waiting for the ERP, in review, or not answered in time (ask again with
the same idempotency key: it is still one credit note). The invoice's interactionId may be
left out when this worker holds the invoice's number (docs/credit-notes.md).
"""
from __future__ import annotations

import html
import json
import time
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from faust.web import Request, Response, View
from pydantic import ValidationError

from agents.context import Context
from app.ops.trace import partition_for
from app.web.admin import SECURITY, _html, _redirect, page
from app.web.auth import Gate
from domain.numbering import claim_key
from runtime.kafka import client_kwargs
from runtime.topics import topic_name
from schemas.credits import CreditOutcome, CreditRequest
from schemas.errors import field_errors
from schemas.invoices import kafka_key

STATUS = {"ISSUED": 201, "REFUSED": 422, "WAITING": 202, "REVIEW": 202}


def interaction_of(ctx: Context, number: str) -> str | None:
    """The interaction an invoice number was given to, if this worker holds its claim."""
    owner = ctx.ledger.table.get(claim_key(number))
    return kafka_key(owner["id"]) if owner else None


async def request_credit(ctx: Context, req: CreditRequest, wait: float) -> CreditOutcome | None:
    """Publish the request; the answer for its key, or None if none came within `wait` seconds."""
    topic = topic_name("callbill.credit-notes")
    consumer = AIOKafkaConsumer(bootstrap_servers=ctx.settings.kafka_bootstrap, enable_auto_commit=False,
                                **client_kwargs())
    await consumer.start()
    try:
        parts = (await consumer._client.fetch_all_metadata()).partitions_for_topic(topic) or set()
        tp = TopicPartition(topic, partition_for(req.interactionId, len(parts) or ctx.settings.topic_partitions))
        consumer.assign([tp])
        consumer.seek(tp, (await consumer.end_offsets([tp]))[tp])  # before the request: its answer comes after
        await ctx.publish("callbill.credit-requests", req.interactionId, req)
        deadline = time.monotonic() + wait
        while (left := deadline - time.monotonic()) > 0:
            for msgs in (await consumer.getmany(timeout_ms=int(min(left, 0.5) * 1000))).values():
                for m in msgs:
                    try:
                        out = CreditOutcome.model_validate_json(m.value or b"")
                    except ValidationError:
                        continue
                    if out.idempotencyKey == req.key() and out.interactionId == req.interactionId:
                        return out
        return None
    finally:
        await consumer.stop()


def parse_request(ctx: Context, body: dict[str, Any], actor: str) -> tuple[CreditRequest | None, int, dict]:
    """(the request, 0, {}) or (None, status, error body)."""
    body = {k: v for k, v in body.items() if v not in (None, "", [])}
    number = str(body.get("invoiceNumber") or "")
    if not body.get("interactionId") and number:
        body["interactionId"] = interaction_of(ctx, number)
        if body["interactionId"] is None:
            return None, 404, {"error": "no invoice with that number on this worker: give its interactionId "
                                        "(the PDF's Reference)"}
    try:
        return CreditRequest.model_validate({**body, "actor": actor}), 0, {}
    except ValidationError as e:
        return None, 422, {"error": "invalid credit request", "fields": field_errors(e)}


def answer_body(req: CreditRequest, out: CreditOutcome | None) -> tuple[int, dict]:
    if out is None:
        return 202, {"status": "REQUESTED", "idempotencyKey": req.key(), "interactionId": req.interactionId,
                     "detail": "no answer yet: ask again with the same idempotencyKey"}
    status = 200 if out.status == "ISSUED" and out.again else STATUS[out.status]
    return status, json.loads(out.model_dump_json(exclude_none=True))


FORM = """<form method="post" action="/credits">
<p><label>Invoice number <input name="invoiceNumber" id="invoiceNumber" required maxlength="64" value="{number}"></label>
<label>Interaction id (optional) <input name="interactionId" id="interactionId" maxlength="128" value="{iid}"></label></p>
<p><label>Reason (printed on the credit note) <input name="reason" id="reason" required maxlength="500" size="60"></label></p>
<p><label>Lines (e.g. 1,2) <input name="lines" id="lines" maxlength="100"></label> or
<label>net amount <input name="amount" id="amount" maxlength="20"></label>
<span class="muted">(neither: the whole invoice, or what is left of it)</span></p>
<p><label>Idempotency key (optional; the same key is the same credit note)
<input name="idempotencyKey" id="idempotencyKey" maxlength="64"></label></p>
<p><button type="submit" id="credit">Issue credit note</button></p></form>"""


def register(app: Any, ctx: Context, gate: Gate) -> None:
    @app.page("/api/credits")
    class CreditApi(View):
        async def post(self, request: Request) -> Response:
            who = await gate.principal(request)
            if who is None:
                return self.json({"error": "unauthorized"}, status=401, headers=SECURITY)
            if not who.can_act:
                return self.json({"error": f"your role ({who.role}) cannot issue credit notes"}, status=403,
                                 headers=SECURITY)
            try:
                body = json.loads(await request.read() or b"{}")
                if not isinstance(body, dict):
                    raise ValueError
                wait = min(max(float(request.query.get("wait", "20")), 0.0), 60.0)
            except ValueError:
                return self.json({"error": "body must be a JSON object"}, status=400, headers=SECURITY)
            req, status, err = parse_request(ctx, body, who.actor)
            if req is None:
                return self.json(err, status=status, headers=SECURITY)
            status, out = answer_body(req, await request_credit(ctx, req, wait))
            return self.json(out, status=status, headers=SECURITY)

    @app.page("/credits")
    class CreditPage(View):
        async def get(self, request: Request) -> Any:
            who = await gate.principal(request)
            if who is None:
                return _redirect(ctx, "/review/login")
            e = html.escape
            body = FORM.format(number=e(request.query.get("invoiceNumber", "")),
                               iid=e(request.query.get("interactionId", "")))
            if not who.can_act:
                body = f"<p class='muted' id='readonly'>Your role ({e(who.role)}) cannot issue credit notes.</p>"
            return _html(self, page("Credit note", "<p><a href='/review'>← queue</a></p>" + body, who))

        async def post(self, request: Request) -> Any:
            who = await gate.principal(request)
            if who is None:
                return _redirect(ctx, "/review/login")
            e = html.escape
            if not who.can_act:
                return _html(self, page("Forbidden", f"<p id='flash'>Your role ({e(who.role)}) cannot issue credit "
                                        "notes.</p>", who), 403)
            form = await request.post()
            fields: dict[str, Any] = {k: str(form.get(k, "")).strip() for k in
                                      ("invoiceNumber", "interactionId", "reason", "amount", "idempotencyKey")}
            lines = str(form.get("lines", "")).strip()
            try:
                fields["lines"] = [int(x) for x in lines.replace(" ", "").split(",") if x] if lines else None
            except ValueError:
                fields["lines"] = ["not a number"]
            req, status, err = parse_request(ctx, fields, who.actor)
            if req is None:
                detail = "; ".join(f"{f['field']}: {f['message']}" for f in err.get("fields", [])) or err["error"]
                return _html(self, page("Credit note", f"<p class='flash' id='flash'>{e(detail)}</p>"
                                        + FORM.format(number=e(fields["invoiceNumber"]), iid=e(fields["interactionId"])),
                                        who), status)
            status, out = answer_body(req, await request_credit(ctx, req, 20.0))
            what = {"ISSUED": f"credit note {out.get('creditNumber')} issued" + (" (already, for this key)"
                                                                                 if out.get("again") else ""),
                    "REFUSED": f"refused: {out.get('reason')} — {out.get('detail') or ''}",
                    "WAITING": "waiting for the ERP; it is retried", "REVIEW": f"in review: {out.get('reason')}",
                    "REQUESTED": "requested; no answer yet"}[out["status"]]
            rows = "".join(f"<tr><th>{e(k)}</th><td>{e(str(v))}</td></tr>" for k, v in out.items())
            return _html(self, page("Credit note", f"<p class='flash' id='flash'>{e(what)}</p><table id='outcome'>"
                                    f"{rows}</table><p><a href='/credits'>Another</a> · <a href='/review'>Queue</a></p>",
                                    who), status)
