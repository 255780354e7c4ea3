"""`callbill schemas [--out DIR]`: the JSON Schema of every topic, from the models.

A producer other than callbill (a CRM sync, a bounce processor, kcat) writes the topics
marked inbound in runtime/topics.py; the rest are for consumers to read. Each schema is
generated from the pydantic model the stages validate with, so it cannot drift from what
is accepted: a record that breaks it goes to callbill.dlq with the reason. docs/schemas/
is this command's output (`callbill schemas --out docs/schemas`), checked by the tests.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter

from runtime.topics import SPECS, TopicSpec

DIALECT = "https://json-schema.org/draft/2020-12/schema"


def schema_of(spec: TopicSpec) -> dict[str, Any]:
    """What may be written (inbound topics: the validating side) or what callbill writes."""
    schema = TypeAdapter(spec.value).json_schema(mode="validation" if spec.inbound else "serialization")
    about = schema.pop("description", None)
    return {
        "$schema": DIALECT,
        "$id": f"{spec.name}.json",
        "title": spec.name,
        "description": spec.doc + (f"\n\n{about}" if about else ""),
        "x-kafka-key": spec.key,
        "x-written-by": "callbill and other producers" if spec.inbound else "callbill",
        **{k: v for k, v in schema.items() if k != "title"},
    }


def example_of(spec: TopicSpec) -> dict[str, Any] | None:
    examples = schema_of(spec).get("examples") or [
        e for d in schema_of(spec).get("$defs", {}).values() for e in d.get("examples", [])]
    return examples[0] if examples else None


def key_of(example: dict[str, Any]) -> str:
    for path in (("interactionId",), ("payload", "interactionId"), ("customerId",), ("address",)):
        value: Any = example
        for part in path:
            value = value.get(part) if isinstance(value, dict) else None
        if isinstance(value, str):
            return value
    raise ValueError("an example without a key field")


def kcat_line(spec: TopicSpec) -> str:
    example = example_of(spec)
    if not spec.inbound or example is None:
        return f"kcat -C -b localhost:9092 -t {spec.name} -o beginning -f '%k %s\\n'"
    value = json.dumps(example, ensure_ascii=False, separators=(",", ":"))
    return (f"echo '{value}' | kcat -P -b localhost:9092 -t {spec.name} -k {key_of(example)} "
            "-X partitioner=murmur2_random")


def index() -> str:
    lines = [
        "# Topic schemas",
        "",
        "The JSON Schema (2020-12) of every topic's values, generated from the models the stages validate",
        "with by `callbill schemas --out docs/schemas`; do not edit by hand. Inbound topics may be written",
        "by producers other than callbill; a record that breaks its schema goes to `callbill.dlq` with the",
        "reason, and nothing else happens to it. The others are callbill's output, for consumers to read.",
        "",
        "Keys are UTF-8 strings. Produce with Kafka's default partitioner (murmur2: the Java client,",
        "aiokafka, `-X partitioner=murmur2_random` for kcat and librdkafka). A record on another partition",
        "is moved to its key's partition first (audited `REPARTITIONED`), at the cost of a second write.",
        "Put `CALLBILL_TOPIC_PREFIX` in front of each name when it is set. More in [../topics.md](../topics.md).",
        "",
        "| topic | written by | key | schema |",
        "| --- | --- | --- | --- |",
    ]
    for spec in SPECS:
        writers = "callbill and other producers" if spec.inbound else "callbill"
        lines.append(f"| `{spec.name}` | {writers} | {spec.key} | [{spec.name}.json]({spec.name}.json) |")
    lines += ["", "## Examples", ""]
    for spec in SPECS:
        lines += [f"`{spec.name}`:", "", "```sh", kcat_line(spec), "```", ""]
    return "\n".join(lines)


def render() -> dict[str, str]:
    """File name -> content, as `--out` writes them."""
    files = {f"{s.name}.json": json.dumps(schema_of(s), indent=2, ensure_ascii=False) + "\n" for s in SPECS}
    files["README.md"] = index()
    return files


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="callbill schemas", description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, help="write one <topic>.json per topic and a README.md index here "
                    "(without it: every schema as one JSON object on standard output)")
    args = ap.parse_args(argv)
    if args.out is None:
        json.dump({s.name: schema_of(s) for s in SPECS}, sys.stdout, indent=2, ensure_ascii=False)
        print()
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    for name, text in render().items():
        (args.out / name).write_text(text)
    print(f"{len(SPECS)} topic schemas and README.md written to {args.out}")
    return 0
