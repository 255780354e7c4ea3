"""The Faust application: one app, its topics and tables; agents and views register on it."""
from __future__ import annotations

import faust

from runtime import faust_fixes  # noqa: F401 - before the app exists: see the module
from runtime import topics as topic_specs
from app.web.auth import guard_stats
from runtime.kafka import faust_credentials
from runtime.logs import configure_logging
from runtime.sensors import SendGuard, disable_commits
from runtime.settings import get_settings
from runtime.writes import TrackedTable

settings = get_settings()
configure_logging(settings.log_level)
settings.data_dir.mkdir(parents=True, exist_ok=True)

class CallbillApp(faust.App):
    async def on_start(self) -> None:
        # Topics must exist before the consumer subscribes, or the first assignment
        # skips them and nothing is consumed until the next metadata refresh.
        await topic_specs.ensure_topics()
        await super().on_start()

    async def on_stop(self) -> None:
        # While stopping, faust-streaming can commit offsets past messages it fetched but
        # never handed to the agent (seen in tests/test_intake.py: events lost on SIGTERM).
        # Commit nothing from here on: the next worker resumes from the last periodic
        # commit and the ledger makes the repeats harmless.
        disable_commits(self)
        await super().on_stop()


app = CallbillApp(
    settings.app_id,
    broker=settings.broker_url,
    broker_credentials=faust_credentials(),
    store=settings.store,
    datadir=str(settings.data_dir),
    topic_partitions=settings.topic_partitions,
    topic_replication_factor=settings.topic_replication,
    topic_allow_declare=True,
    producer_acks=-1,
    broker_session_timeout=settings.session_timeout,
    broker_heartbeat_interval=min(3.0, settings.session_timeout / 3),
    consumer_auto_offset_reset="earliest",
    # small fetches: one stage's backlog must not stall the others (README, known problems)
    broker_max_poll_records=settings.max_poll_records,
    consumer_max_fetch_size=settings.fetch_max_bytes,
    web_port=settings.web_port,
    web_bind=settings.web_host,
    web_host=settings.web_host,
    # The built-in table pages would serve the customer directory to anyone.
    web_tables_enabled=False,
    web_stats_enabled=settings.web_stats,  # behind the admin token (app/web/auth.py)
    web_application_options={"middlewares": [guard_stats]},
    web_graph_enabled=False,
    web_router_enabled=False,
    web_metrics_enabled=False,
    # table changelog sends can be awaited by a stage (runtime/writes.py)
    Table=TrackedTable,
)

topics = topic_specs.declare(app)
app.sensors.add(SendGuard(app))


# Register agents and web views by plain import, not autodiscovery: autodiscovery turns
# an import error into a warning and starts a worker without the agent.
from agents import acks, assemble, billing, bounces, delivery, documents, intake, retry, review  # noqa: E402,F401
from tables import reviews, suppressions  # noqa: E402,F401
from app.web import admin, bounces as provider_bounces, bridge, documents as document_links, health  # noqa: E402,F401
