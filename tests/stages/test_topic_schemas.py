"""The published topic schemas (issue 17, point 6): generated from the models, and true to
what the stages accept: every example is accepted by the schema and by its stage, and a
record that breaks the schema is refused by it and goes to the dead-letter topic, with the
field named, when a stage reads it."""
from __future__ import annotations

import asyncio
import base64
import copy
import json
import subprocess
import sys

import jsonschema_rs
import pytest

from agents import assemble, bounces, intake
from agents.routing import guard_one
from app.ops.schemas import example_of, kcat_line, render, schema_of
from runtime.topics import SPECS
from stage_context import REPO, event, make_context

DOCS = REPO / "docs" / "schemas"
BY_NAME = {s.name: s for s in SPECS}
STAGE_OF = {"genesys.events": assemble, "callbill.interactions": intake, "callbill.bounces": bounces}


def test_docs_schemas_are_what_the_command_writes(tmp_path):
    files = render()
    assert sorted(p.name for p in DOCS.iterdir()) == sorted(files), "run: callbill schemas --out docs/schemas"
    for name, text in files.items():
        assert (DOCS / name).read_text() == text, f"docs/schemas/{name} is stale: run callbill schemas --out docs/schemas"
    out = subprocess.run([sys.executable, "-m", "app.cli", "schemas", "--out", str(tmp_path)], cwd=REPO,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(files)
    whole = subprocess.run([sys.executable, "-m", "app.cli", "schemas"], cwd=REPO, capture_output=True, text=True,
                           timeout=60)
    assert set(json.loads(whole.stdout)) == set(BY_NAME)


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_every_schema_is_valid_json_schema_with_its_key_rule(spec):
    schema = schema_of(spec)
    jsonschema_rs.validator_for(schema)  # raises on an invalid schema
    assert schema["x-kafka-key"] and schema["title"] == spec.name
    if spec.inbound:
        assert example_of(spec) is not None, f"{spec.name} is inbound: its model needs an example"
        assert "kcat -P" in kcat_line(spec)


@pytest.mark.parametrize("name", ["genesys.events", "callbill.interactions", "callbill.bounces", "crm.customers"])
def test_an_inbound_example_is_valid_by_its_schema(name):
    example = example_of(BY_NAME[name])
    assert jsonschema_rs.validator_for(schema_of(BY_NAME[name])).is_valid(example)


BROKEN = {  # a record breaking its topic's schema, and the field the DLQ reason names
    "genesys.events": (lambda e: e["payload"].update(durationSeconds=-5), "durationSeconds"),
    "callbill.interactions": (lambda e: e.pop("endedAt"), "endedAt"),
    "callbill.bounces": (lambda e: e.update(kind="bounced"), "kind"),
}


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_a_record_breaking_its_schema_is_dead_lettered_by_its_stage_with_the_field_named(tmp_path, name):
    spec, stage = BY_NAME[name], STAGE_OF[name]
    validator = jsonschema_rs.validator_for(schema_of(spec))
    ctx = make_context(tmp_path)
    good = example_of(spec)
    asyncio.run(guard_one(ctx, stage.STAGE, event(good, topic=name, key="gen-100000001"),
                          lambda e: stage.handle(ctx, e)))
    assert ctx.out("callbill.dlq") == []  # the example itself is taken

    bad = copy.deepcopy(good)
    BROKEN[name][0](bad)
    field = BROKEN[name][1]
    assert not validator.is_valid(bad)
    assert any(field in str(err) or field in "/".join(map(str, err.instance_path)) for err in validator.iter_errors(bad))
    raw = json.dumps(bad).encode()
    asyncio.run(guard_one(ctx, stage.STAGE, event(raw, topic=name, key="gen-100000002", offset=1),
                          lambda e: stage.handle(ctx, e)))
    [dead] = ctx.out("callbill.dlq")
    assert field in dead["reason"] and dead["stage"] == stage.STAGE
    assert base64.b64decode(dead["value"]) == raw  # the record, whole
