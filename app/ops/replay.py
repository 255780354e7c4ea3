"""`callbill replay`: re-publish a topic's messages into the pipeline at that stage.

    callbill replay --topic callbill.documents --from 2026-11-24T00:00:00Z --to 2026-11-25T00:00:00Z
    callbill replay --topic callbill.billable --from 0 --only-failed --dry-run
    callbill replay --topic callbill.dlq --from 0                    # dead letters back where they failed
    callbill replay --topic callbill.invoices --from 1200 --force-reissue --yes

Each message goes back to the same topic with its key, value and a `callbill-replay`
header; the stage then decides as for any message, so by default a replay is harmless:
the ledger answers DUPLICATE / ALREADY_BILLED / ALREADY_DOCUMENTED / ALREADY_DELIVERED and
nothing is invoiced or sent twice. `--only-failed` keeps the interactions with an open
review item. `--force-reissue` (invoices or documents only, confirmed with --yes) renders
the documents again and sends the customer a new message; it never issues a second
invoice (a new invoice for the same call is the ERP's business, as a credit note).
After publishing it reads the audit trail and prints what each stage decided.
"""
from __future__ import annotations

import argparse
import asyncio
import base64
import json
import sys
import time
import uuid
from collections import Counter
from datetime import datetime

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from agents.stages import REPLAY_STAGE_OF
from runtime import headers
from runtime.kafka import client_kwargs
from runtime.settings import get_settings
from runtime.topics import topic_name

STAGE_OF = {**REPLAY_STAGE_OF, "callbill.dlq": None}  # the dead letters go back to their own topics
REISSUABLE = ("callbill.invoices", "callbill.documents")


def position(text: str) -> int | datetime:
    """An offset (applies to every partition) or an ISO 8601 time with an offset or Z."""
    if text.isdigit():
        return int(text)
    try:
        t = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is neither an offset nor an ISO 8601 time") from None
    if t.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r} needs a timezone (Z or +hh:mm)")
    return t


async def _offsets(consumer: AIOKafkaConsumer, tps: list[TopicPartition], at: int | datetime | None,
                   ends: dict[TopicPartition, int]) -> dict[TopicPartition, int]:
    if at is None:
        return dict(ends)
    if isinstance(at, int):
        starts = await consumer.beginning_offsets(tps)
        return {tp: min(max(at, starts[tp]), ends[tp]) for tp in tps}
    found = await consumer.offsets_for_times({tp: int(at.timestamp() * 1000) for tp in tps})
    return {tp: (found[tp].offset if found[tp] else ends[tp]) for tp in tps}


async def open_review_keys(consumer: AIOKafkaConsumer) -> set[str]:
    """Interactions whose review item is open (the compacted callbill.reviews)."""
    from runtime.topics import assign_from_start

    tps = await assign_from_start(consumer, topic_name("callbill.reviews"))
    if not tps:
        return set()
    ends = await consumer.end_offsets(tps)
    state: dict[str, bool] = {}
    last = {tp: -1 for tp in tps}
    deadline = time.monotonic() + 120
    while any(last[tp] < ends[tp] - 1 for tp in tps) and time.monotonic() < deadline:
        for tp, msgs in (await consumer.getmany(timeout_ms=500)).items():
            for m in msgs:
                last[tp] = max(last[tp], m.offset)
                if m.key:
                    state[m.key.decode()] = bool(m.value) and json.loads(m.value).get("status") == "OPEN"
    return {k for k, is_open in state.items() if is_open}


def _bar(done: int, total: int, what: str) -> None:
    width = 30
    filled = min(width, int(width * done / total)) if total else width
    sys.stderr.write(f"\r{what:10} [{'#' * filled}{'.' * (width - filled)}] {done}/{total}")
    sys.stderr.flush()


SCAN_SECONDS = 300  # per partition: a broker that stops answering ends the scan, said in the summary


async def replay(base: str, start: int | datetime, end: int | datetime | None, only_failed: bool, dry_run: bool,
                 reissue: bool, wait: float, bootstrap: str | None = None) -> dict:
    s = get_settings()
    bootstrap = bootstrap or s.kafka_bootstrap
    topic = topic_name(base)
    run = f"replay-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-{uuid.uuid4().hex[:6]}"
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, **client_kwargs())
    await consumer.start()
    try:
        failed = await open_review_keys(consumer) if only_failed else None
        parts = (await consumer._client.fetch_all_metadata()).partitions_for_topic(topic) or set()
        if not parts:
            raise SystemExit(f"callbill replay: topic {topic} does not exist")
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        firsts = await _offsets(consumer, tps, start, ends)
        lasts = await _offsets(consumer, tps, end, ends)
        total = sum(max(0, lasts[tp] - firsts[tp]) for tp in tps)
        picked: list[tuple[str, bytes | None, bytes, list]] = []  # (topic, key, value, headers)
        scanned, unreadable, cut_short = 0, 0, []
        for tp in tps:
            if lasts[tp] <= firsts[tp]:
                continue
            consumer.assign([tp])
            consumer.seek(tp, firsts[tp])
            last, deadline = firsts[tp] - 1, time.monotonic() + SCAN_SECONDS
            while last < lasts[tp] - 1 and time.monotonic() < deadline:
                for msgs in (await consumer.getmany(timeout_ms=1000)).values():
                    for m in msgs:
                        last = max(last, m.offset)
                        if m.offset >= lasts[tp]:
                            continue
                        scanned += 1
                        key = m.key.decode(errors="replace") if m.key else None
                        if failed is not None and key not in failed:
                            continue
                        target = _target(base, m)
                        if target is None:
                            unreadable += 1
                        else:
                            picked.append(target)
                _bar(scanned, total, "scanning")
            if last < lasts[tp] - 1:
                cut_short.append(tp.partition)
        if total:
            sys.stderr.write("\n")
    finally:
        await consumer.stop()
    summary: dict = {"run": run, "topic": topic, "scanned": scanned, "in_range": total, "selected": len(picked),
                     "published": 0, "decisions": {}}
    if unreadable:
        summary["unreadable"] = unreadable  # dead letters without a value or an original topic
    if cut_short:
        summary["cut_short_partitions"] = cut_short
    if dry_run or not picked:
        return summary
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, **client_kwargs())
    await producer.start()
    began = time.time()
    try:
        futs = []
        for i, (t, key, value, hdrs) in enumerate(picked, start=1):
            h = [(k, v) for k, v in hdrs if k not in (headers.REPLAY, headers.REISSUE, headers.REROUTED_FROM)]
            h.append((headers.REPLAY, run.encode()))
            if reissue:
                h.append((headers.REISSUE, run.encode()))
            futs.append(await producer.send(t, key=key, value=value, headers=h))
            if i % 200 == 0 or i == len(picked):
                await asyncio.gather(*futs)
                futs = []
                _bar(i, len(picked), "publishing")
        sys.stderr.write("\n")
    finally:
        await producer.stop()
    summary["published"] = len(picked)
    if wait > 0:
        # by the stage each message went back to (a dead letter replay feeds several)
        stage_of_topic = {topic_name(b): st for b, st in STAGE_OF.items() if st}
        keys: dict[str, set[str]] = {}
        for t, k, _, _ in picked:
            if k and t in stage_of_topic:
                keys.setdefault(stage_of_topic[t], set()).add(k.decode(errors="replace"))
        for stage, ks in keys.items():
            summary["decisions"][stage] = await decisions(bootstrap, stage, ks, began, wait)
    return summary


def _target(base: str, m) -> tuple[str, bytes | None, bytes, list] | None:
    """Where a message goes back to: its own topic, or a dead letter's original topic."""
    if base != "callbill.dlq":
        return (m.topic, m.key, m.value, list(m.headers or []))
    try:
        dl = json.loads(m.value)
        value = base64.b64decode(dl["value"]) if dl.get("value") else None
        key = base64.b64decode(dl["key"]) if dl.get("key") else None
    except (ValueError, KeyError, TypeError):
        return None
    if value is None or not dl.get("topic"):
        return None
    return (dl["topic"], key, value, [])


async def decisions(bootstrap: str, stage: str, keys: set[str], since: float, wait: float) -> dict[str, int]:
    """What `stage` decided about the replayed keys, read from the audit trail."""
    from runtime.topics import assign_from_start

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, **client_kwargs())
    await consumer.start()
    seen: dict[str, str] = {}
    try:
        tps = await assign_from_start(consumer, topic_name("callbill.audit"))
        # the ends first: a partition with no record since `since` when asked may get one a
        # moment later; seeking to an end read after that would skip it
        ends = await consumer.end_offsets(tps)
        found = await consumer.offsets_for_times({tp: int(since * 1000) for tp in tps})
        for tp in tps:
            consumer.seek(tp, found[tp].offset if found[tp] else ends[tp])
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and len(seen) < len(keys):
            for msgs in (await consumer.getmany(timeout_ms=500)).values():
                for m in msgs:
                    a = json.loads(m.value)
                    if a.get("stage") == stage and a.get("interactionId") in keys and a["interactionId"] not in seen \
                            and a.get("outcome") not in ("PARKED",):
                        seen[a["interactionId"]] = a["outcome"]
    finally:
        await consumer.stop()
    counts = Counter(seen.values())
    if len(seen) < len(keys):
        counts["(no decision yet)"] = len(keys) - len(seen)
    return dict(counts)


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="callbill replay", description=__doc__.split("\n\n")[0])
    p.add_argument("--topic", required=True, choices=sorted(STAGE_OF))
    p.add_argument("--from", dest="start", required=True, type=position, help="offset or ISO 8601 time")
    p.add_argument("--to", dest="end", type=position, help="offset or ISO 8601 time (exclusive; default: now)")
    p.add_argument("--only-failed", action="store_true", help="only interactions with an open review item")
    p.add_argument("--dry-run", action="store_true", help="count what would be replayed; publish nothing")
    p.add_argument("--force-reissue", action="store_true",
                   help="render the documents again and send the customers a new message (invoices, documents)")
    p.add_argument("--yes", action="store_true", help="confirm --force-reissue without asking")
    p.add_argument("--wait", type=float, default=30.0, help="seconds to wait for the stage's decisions (0: none)")
    args = p.parse_args(argv)
    if args.force_reissue:
        if args.topic not in REISSUABLE:
            print("callbill replay: --force-reissue works on callbill.invoices or callbill.documents only "
                  "(a second invoice for one call is the ERP's business, as a credit note)", file=sys.stderr)
            return 2
        print(f"--force-reissue: every selected interaction of {args.topic} gets its invoice PDF rendered and "
              "stored again and a NEW message to the customer (email, SMS or print job), even if it was delivered.")
        if not args.yes and not args.dry_run:
            if not sys.stdin.isatty() or input("Type REISSUE to go on: ").strip() != "REISSUE":
                print("callbill replay: not confirmed; nothing published (use --yes to confirm)", file=sys.stderr)
                return 2
    try:
        summary = asyncio.run(replay(args.topic, args.start, args.end, args.only_failed, args.dry_run,
                                     args.force_reissue, 0 if args.dry_run else args.wait))
    except SystemExit as e:
        print(e, file=sys.stderr)
        return 2
    except Exception as e:  # noqa: BLE001 - a clear line, not a traceback
        print(f"callbill replay: {type(e).__name__}: {e}", file=sys.stderr)
        return 3
    verb = "would replay" if args.dry_run else "replayed"
    print(f"{summary['topic']}: scanned {summary['scanned']} messages, {verb} {summary['selected']} "
          f"(run {summary['run']})")
    if summary.get("unreadable"):
        print(f"  {summary['unreadable']} dead letter(s) without a value or an original topic: not replayed")
    for stage, outcomes in sorted(summary["decisions"].items()):
        for outcome, n in sorted(outcomes.items()):
            print(f"  {stage}: {outcome} {n}")
    if summary.get("cut_short_partitions"):
        print(f"callbill replay: the scan stopped early on partition(s) {summary['cut_short_partitions']} "
              f"({summary['scanned']} of {summary['in_range']} read): run it again for the rest", file=sys.stderr)
        return 1
    return 0
