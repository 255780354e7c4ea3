"""Log configuration: JSON lines with the interaction, quiet libraries."""
from __future__ import annotations

import json
import logging

from runtime.logs import JsonFormatter, configure_logging, current_interaction


def test_chatty_libraries_do_not_log_under_a_debug_root():
    logging.getLogger().setLevel(logging.DEBUG)  # as Faust leaves it
    configure_logging("info")
    for name in ("botocore.endpoint", "aiobotocore.client", "faust.topics"):
        assert not logging.getLogger(name).isEnabledFor(logging.INFO), name
    assert logging.getLogger("botocore.endpoint").isEnabledFor(logging.WARNING)


def test_a_line_names_the_interaction_being_handled():
    fmt = JsonFormatter()
    rec = logging.LogRecord("callbill.x", logging.WARNING, __file__, 1, "retrying", None, None)
    assert "interactionId" not in json.loads(fmt.format(rec))
    token = current_interaction.set("iid-42")
    try:
        assert json.loads(fmt.format(rec))["interactionId"] == "iid-42"
        rec.interactionId = "explicit"  # a line that names one keeps its own
        assert json.loads(fmt.format(rec))["interactionId"] == "explicit"
    finally:
        current_interaction.reset(token)


def test_callbill_version_names_the_installed_version():
    import subprocess
    import sys
    from importlib.metadata import version

    out = subprocess.run([sys.executable, "-m", "app.cli", "--version"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == f"callbill {version('callbill')}"
