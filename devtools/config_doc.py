"""docs/configuration.md from the settings model: `python -m devtools.config_doc > docs/configuration.md`.

tests/unit/test_settings.py checks the file is what this prints, so the reference never drifts
from runtime/settings.py.
"""
from __future__ import annotations

import json

from runtime.settings import DEPRECATED, Settings



def _default(field) -> str:
    value = field.default_factory() if field.default_factory is not None else field.default
    if value is None:
        return "(unset)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return json.dumps(value)
    return str(getattr(value, "get_secret_value", lambda: value)()) or '""'


def render() -> str:
    lines = [
        "# Configuration reference",
        "",
        "Every setting is a `CALLBILL_*` environment variable (or a line of `.env`); `.env.example` lists",
        "them with their defaults, and `deploy/production.env` is a production starting point. Generated",
        "from `runtime/settings.py` by `python -m devtools.config_doc`; do not edit by hand.",
        "",
        "An empty value (`CALLBILL_X=`, as in a copy of `.env.example`) means unset: the default applies.",
        "`CALLBILL_BOUNCE_MAILDIR` (whose files the worker moves) may not be the working directory, a",
        "source checkout, a home directory or `/`. A `CALLBILL_*` name that no setting reads (in the",
        "environment or `./.env`) is refused at start-up with the closest known name (\"did you mean",
        "…\"); the local stack's own variables (`CALLBILL_DEV_*`, `CALLBILL_CACHE_DIR`, `CALLBILL_KAFKA_CDS`,",
        "`CALLBILL_S3_BUCKET`) are allowed.",
        "",
        "Secrets can also be files: a file named like the variable (`CALLBILL_ERP_TOKEN`, its content the",
        "value) in `CALLBILL_SECRETS_DIR`, else in `/run/secrets` when that exists (where Docker and",
        "Kubernetes mount secrets). The environment and `./.env` take precedence over a file; a misspelt",
        "`CALLBILL_*` file name is refused like a misspelt variable, other files there are ignored, and a",
        "`CALLBILL_SECRETS_DIR` that is not a directory is refused at start-up.",
        "",
        "With `CALLBILL_ENV=production` the worker refuses unsafe values at start-up (see",
        "[operations](operations.md)).",
        "",
        "| variable | default | what it does |",
        "| --- | --- | --- |",
    ]
    for name, field in Settings.model_fields.items():
        desc = (field.description or "").replace("|", "\\|")
        lines.append(f"| `CALLBILL_{name.upper()}` | `{_default(field)}` | {desc} |")
    lines += ["", "## Deprecated names", "", "Read for one more release, with a warning at start-up:", ""]
    lines += [f"- `{old}`: use `{new}`" for old, new in DEPRECATED.items()]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(render(), end="")
