"""`callbill review list|show|resubmit|dismiss`: the review API from the command line.

Talks to a running worker (`--url`, default the configured web address) with the client
token in CALLBILL_API_TOKEN (`callbill operators token NAME`), or CALLBILL_ADMIN_TOKEN in
development. The audit trail records the client the token belongs to: the worker verifies
who acts, the command cannot claim a name.
"""
from __future__ import annotations

import argparse
import json
import sys

import httpx

from runtime.settings import get_settings


def main(argv: list[str]) -> int:
    s = get_settings()
    p = argparse.ArgumentParser(prog="callbill review")
    p.add_argument("--url", default=f"http://{s.web_host}:{s.web_port}")
    p.add_argument("--json", action="store_true", help="print the API's JSON")
    sub = p.add_subparsers(dest="cmd", required=True)
    ls = sub.add_parser("list")
    ls.add_argument("--reason")
    ls.add_argument("--stage")
    ls.add_argument("--status", default="OPEN")
    ls.add_argument("--min-age", type=float, help="seconds")
    show = sub.add_parser("show")
    show.add_argument("interaction_id")
    rs = sub.add_parser("resubmit")
    rs.add_argument("interaction_id")
    rs.add_argument("--customer-id")
    rs.add_argument("--note")
    ds = sub.add_parser("dismiss")
    ds.add_argument("interaction_id")
    ds.add_argument("--note", required=True)
    args = p.parse_args(argv)
    token = s.api_token or s.admin_token
    if not token:
        print("callbill review: set CALLBILL_API_TOKEN (a client token: callbill operators token NAME)",
              file=sys.stderr)
        return 2
    headers = {"Authorization": f"Bearer {token.get_secret_value()}"}
    try:
        with httpx.Client(base_url=args.url, headers=headers, timeout=60) as c:
            if args.cmd == "list":
                params = {k: v for k, v in {"reason": args.reason, "stage": args.stage, "status": args.status,
                                            "min_age": args.min_age}.items() if v is not None}
                r = c.get("/api/review", params=params)
            elif args.cmd == "show":
                r = c.get(f"/api/review/{args.interaction_id}")
            else:
                body = {"note": args.note}
                if args.cmd == "resubmit" and args.customer_id:
                    body["customerId"] = args.customer_id
                r = c.post(f"/api/review/{args.interaction_id}/{args.cmd}", json=body)
    except httpx.HTTPError as e:
        print(f"callbill review: cannot reach {args.url} ({type(e).__name__})", file=sys.stderr)
        return 3
    data = r.json() if r.headers.get("content-type", "").startswith("application/json") else {"error": r.text}
    if r.status_code >= 400:
        print(f"callbill review: {r.status_code} {data.get('error')}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(data, indent=2))
    elif args.cmd == "list":
        print(f"{'interaction':40} {'stage':10} {'reason':34} {'age':>8}  times")
        for i in data["items"]:
            print(f"{i['interactionId']:40} {i['stage']:10} {i['reason']:34} {i['ageSeconds']:>7}s  {i['count']}")
        print(f"{data['count']} item(s)")
    elif args.cmd == "show":
        item = data["item"]
        print(f"{item['interactionId']}: {item['status']} {item['reason']} ({item['stage']}), {item['ageSeconds']} s old")
        if item.get("detail"):
            print(f"  {item['detail']}")
        for k, v in (item.get("interaction") or {}).items():
            print(f"  {k}: {v}")
        led = data.get("ledger") or {}
        print(f"  ledger: {led.get('state') or 'no entry'}" + (f" ({led['reason']})" if led.get("reason") else "")
              + (f"  [{' → '.join(str(x) for x in led.get('states') or [])}]" if led.get("states") else ""))
        for h in data["history"]:
            print(f"  {h['time'][:19]}  {h['stage']:10} {h['what']}" + (f" — {h['reason']}" if h.get("reason") else ""))
    else:
        print(f"{args.cmd} of {args.interaction_id} accepted (by {data['actor']})")
    return 0
