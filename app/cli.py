"""The `callbill` console script: one entry point for workers, the dev stack and operators."""
from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import sys
from pathlib import Path

USAGE = """callbill <command> [args]    (callbill --version: the installed version)

commands:
  worker [faust worker options]   run a stream worker (agents, bridge, health, metrics)
  dev up|down|status              the local stack: Kafka (KRaft), SeaweedFS S3, SMTP sink
  topics                          list every topic callbill declares
  schemas [--out DIR]             the JSON Schema of every topic, from the models (docs/schemas)
  customers import FILE [--dry-run]   CSV or JSON lines -> crm.customers, row by row
  customers delete ID...          remove customers from the directory (tombstones)
  review list|show|resubmit|dismiss   the review queue (through a worker's API)
  credit NUMBER --reason TEXT [--lines 1,2|--amount X]   a credit note on an invoice (through a worker's API)
  operators add|passwd|remove|revoke|token|list   who may use the review pages and API
  trace INTERACTION_ID            an interaction's whole story from the ledger and the topics
  replay --topic T --from X ...   re-publish a topic's messages into the pipeline at that stage
  post FILE... [--url URL]        sign and POST sample events to a running bridge
  backfill --since T [--until T]  ended conversations from the Genesys Analytics API into the pipeline
  demo                            push the samples through the real pipeline and report
"""


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE)
        return 0
    if argv[0] in ("--version", "version"):
        from importlib.metadata import version

        print(f"callbill {version('callbill')}")
        return 0
    cmd, rest = argv[0], argv[1:]
    if cmd == "worker":
        return _worker(rest)
    if cmd in ("dev", "demo"):
        return _dev_command(cmd, rest)
    if cmd == "topics":
        from runtime.topics import SPECS, topic_name

        for s in SPECS:
            print(f"{topic_name(s.name):32} {'compacted' if s.compacted else 'delete':9} {s.doc}")
        return 0
    if cmd == "schemas":
        from app.ops import schemas

        return schemas.main(rest)
    if cmd == "post":
        return _post(rest)
    if cmd == "review":
        from app.ops import review as review_cli

        return review_cli.main(rest)
    if cmd == "credit":
        from app.ops import credit

        return credit.main(rest)
    if cmd == "operators":
        from app.ops import operators

        return operators.main(rest)
    if cmd == "trace":
        from app.ops import trace

        return trace.main(rest)
    if cmd == "replay":
        from app.ops import replay

        return replay.main(rest)
    if cmd == "customers":
        from app.ops import customers as customers_import

        return customers_import.main(rest)

    if cmd == "backfill":
        from app.ops import backfill

        return backfill.main(rest)
    print(f"callbill: unknown command {cmd!r}\n\n{USAGE}", file=sys.stderr)
    return 2


def _dev_command(cmd: str, rest: list[str]) -> int:
    """`dev` and `demo` live in devtools/ (above the product, installed with the `dev` extra);
    they reach the CLI as entry points, so nothing in app/ imports them."""
    from importlib.metadata import entry_points

    found = [ep for ep in entry_points(group="callbill.dev_commands") if ep.name == cmd]
    try:
        if not found:
            raise ImportError(cmd)
        command = found[0].load()
    except ImportError:
        print(f"callbill {cmd}: needs the development tools: pip install 'callbill[dev]'", file=sys.stderr)
        return 2
    return command(rest)


def _worker(rest: list[str]) -> int:
    from app.main import app, settings  # the pre-flight runs there (app/preflight.py): exit 2 on a problem

    if not any(a.startswith("-l") or a.startswith("--loglevel") for a in rest):
        rest = ["-l", settings.log_level, *rest]
    sys.argv = ["callbill", "worker", *rest]
    app.main()
    return 0


def sign(body: bytes, secret: str) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _post(rest: list[str]) -> int:
    import httpx

    from runtime.settings import get_settings

    s = get_settings()
    p = argparse.ArgumentParser(prog="callbill post")
    p.add_argument("files", nargs="+", type=Path)
    p.add_argument("--url", default=f"http://{s.web_host}:{s.web_port}")
    args = p.parse_args(rest)
    if not s.webhook_secret:
        print("callbill post: set CALLBILL_WEBHOOK_SECRET", file=sys.stderr)
        return 2
    secret = s.webhook_secret.get_secret_value()
    failed = 0
    with httpx.Client(timeout=15) as client:
        for f in args.files:
            doc = json.loads(f.read_text())
            path = "/genesys/eventbridge" if "detail" in doc else "/genesys/webhook"
            body = json.dumps(doc).encode()
            r = client.post(args.url + path, content=body, headers={
                "Content-Type": "application/json", "X-Callbill-Signature": sign(body, secret)})
            print(f"{f.name}: {r.status_code} {r.text}")
            failed += r.status_code != 202
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
