"""`callbill credit <invoiceNumber> --reason TEXT [--lines 1,2 | --amount 10.00]`: a credit note.

Talks to a running worker (`--url`) with the client token in CALLBILL_API_TOKEN, like
`callbill review`: the worker checks the operator role and records who asked. The command
prints the request's idempotency key first; the same command again (or `--key` with that
key) is the same credit note, never a second one. Exit 0 issued, 1 refused or in review,
2 usage, 3 worker unreachable, 4 no answer yet (run it again with the key).
"""
from __future__ import annotations

import argparse
import json
import sys
from decimal import Decimal, InvalidOperation

import httpx

from runtime.settings import get_settings
from schemas.credits import CreditRequest


def main(argv: list[str]) -> int:
    s = get_settings()
    p = argparse.ArgumentParser(prog="callbill credit", description="Issue a credit note on an invoice.")
    p.add_argument("invoice_number")
    p.add_argument("--reason", required=True, help="printed on the credit note (one line)")
    how = p.add_mutually_exclusive_group()
    how.add_argument("--lines", help="1-based line numbers to credit in full, e.g. 1,3")
    how.add_argument("--amount", help="a net amount (before tax) to credit")
    p.add_argument("--interaction", help="the invoice's interactionId (the PDF's Reference); found from the "
                                         "number when the worker holds it")
    p.add_argument("--key", help="the idempotency key (printed by the first run); default: derived from the request")
    p.add_argument("--url", default=f"http://{s.web_host}:{s.web_port}")
    p.add_argument("--wait", type=float, default=30, help="seconds to wait for the answer")
    p.add_argument("--json", action="store_true", help="print the API's JSON")
    args = p.parse_args(argv)
    body: dict = {"invoiceNumber": args.invoice_number, "reason": args.reason, "interactionId": args.interaction,
                  "idempotencyKey": args.key}
    try:
        if args.lines:
            body["lines"] = [int(x) for x in args.lines.replace(" ", "").split(",") if x]
        if args.amount:
            body["amount"] = str(Decimal(args.amount))
    except (ValueError, InvalidOperation):
        print("callbill credit: --lines takes numbers like 1,3; --amount a decimal like 10.00", file=sys.stderr)
        return 2
    if args.interaction:  # the key is known before the worker answers: print it first, whatever happens next
        try:
            print(f"idempotency key: {CreditRequest.model_validate({**body, 'actor': 'cli'}).key()}", flush=True)
        except ValueError as e:
            print(f"callbill credit: {e}", file=sys.stderr)
            return 2
    token = s.api_token or s.admin_token
    if not token:
        print("callbill credit: set CALLBILL_API_TOKEN (a client token: callbill operators token NAME)", file=sys.stderr)
        return 2
    try:
        r = httpx.post(f"{args.url}/api/credits", params={"wait": args.wait},
                       json={k: v for k, v in body.items() if v is not None},
                       headers={"Authorization": f"Bearer {token.get_secret_value()}"}, timeout=args.wait + 30)
    except httpx.HTTPError as e:
        print(f"callbill credit: cannot reach {args.url} ({type(e).__name__})", file=sys.stderr)
        return 3
    data = r.json() if r.headers.get("content-type", "").startswith("application/json") else {"error": r.text}
    if args.json:
        print(json.dumps(data, indent=2))
    if not args.interaction and data.get("idempotencyKey"):
        print(f"idempotency key: {data['idempotencyKey']}")
    if r.status_code in (400, 401, 403, 404) or (r.status_code == 422 and "fields" in data):
        print(f"callbill credit: {r.status_code} {data.get('error')}"
              + "".join(f"\n  {f['field']}: {f['message']}" for f in data.get("fields", [])), file=sys.stderr)
        return 2 if r.status_code in (400, 422) else 1
    status = data.get("status")
    if status == "ISSUED":
        again = " (already issued for this key)" if data.get("again") else ""
        print(f"credit note {data['creditNumber']} on {data['invoiceNumber']}: {data['total']} {data['currency']}"
              f"{again}; credited so far {data.get('creditedTotal')} {data['currency']}")
        return 0
    if status == "REFUSED":
        print(f"refused: {data.get('reason')}: {data.get('detail') or ''}", file=sys.stderr)
        return 1
    if status == "REVIEW":
        print(f"in review: {data.get('reason')} (callbill review show {data['interactionId']}~{data['idempotencyKey']})",
              file=sys.stderr)
        return 1
    print(f"{status or 'REQUESTED'}: {data.get('reason') or data.get('detail') or 'no answer yet'}; "
          "run the command again (same key): it stays one credit note")
    return 4
