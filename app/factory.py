"""The composition root: `create_app(settings, services=None)` builds the one Faust app.

Building the app is where the worker's side effects happen, not at import: Faust's fixes
are applied (runtime/faust_fixes.py), logging is configured, the data folder is made.
Then the tables, the whole-topic views, every stage and every web view are registered
by explicit calls (not autodiscovery, which turns an import error into a warning and
starts a worker without the agent). Agent, table and topic names are fixed here and in
the stage modules: a deployment's offsets and changelogs depend on them.
"""
from __future__ import annotations

import faust
from faust.cli.worker import worker as faust_worker_command

from agents import acks, assemble, billing, bounces, credits, customers, delivery, documents, intake, retry, review
from agents.context import Context
from app.bootstrap import Services, build_services
from app.web import admin, bridge, health
from app.web import bounces as provider_bounces
from app.web import documents as document_links
from app.web import credits as credit_pages
from app.web.auth import Gate
from runtime import faust_fixes, rocksdb_memory
from runtime import topics as topic_specs
from runtime.kafka import faust_credentials
from runtime.logs import configure_logging, get_logger, worker_logging_config
from runtime.partitioning import KeyPartitioner
from runtime.sensors import SendGuard, disable_commits
from runtime.settings import Settings
from runtime.writes import TrackedTable
from tables import ledger, pending, reviews
from tables.compacted import follow_on
from tables.directory import Directory
from tables.ledger import Ledger
from tables.pending import PendingTable
from tables.reviews import ReviewQueue, ReviewTable
from tables.sessions import Sessions
from tables.suppressions import Suppressions

log = get_logger("worker")
STAGE_MODULES = (assemble, intake, billing, credits, documents, delivery, acks, bounces, review, retry, customers)


class QuietWorker(faust.Worker):
    """No banner and nothing printed beside the logs: every line a worker writes is JSON
    (runtime/logs.py); what the banner told (id, transport, store, web) is logged at start."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs["quiet"] = True
        super().__init__(*args, **kwargs)

    async def on_startup_finished(self) -> None:
        conf = self.app.conf
        log.info("worker started", extra={"reason": f"id {conf.id}, store {conf.store}, web {conf.web_bind}:{conf.web_port}"})
        await super().on_startup_finished()


def _no_banner(command: object, worker: object) -> None:
    """Faust's worker command prints an ASCII table when a worker is created, with
    `faust -A app worker` as with `callbill worker`; the start is logged instead."""


faust_worker_command.on_worker_created = _no_banner


class CallbillApp(faust.App):
    topics_by_name: dict[str, faust.TopicT]
    ctx: Context

    async def on_start(self) -> None:
        # Topics must exist before the consumer subscribes, or the first assignment
        # skips them and nothing is consumed until the next metadata refresh.
        await topic_specs.ensure_topics()
        await super().on_start()

    async def on_stop(self) -> None:
        # While stopping, faust-streaming can commit offsets past messages it fetched but
        # never handed to the agent (seen in tests/integration/test_intake.py: events lost on SIGTERM).
        # Commit nothing from here on: the next worker resumes from the last periodic
        # commit and the ledger makes the repeats harmless.
        disable_commits(self)
        await super().on_stop()


def create_app(settings: Settings, services: Services | None = None) -> CallbillApp:
    faust_fixes.apply()  # before the app exists: see the module
    rocksdb_memory.apply()
    configure_logging(settings.log_level)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    sessions = Sessions()
    gate = Gate(settings, sessions)  # who may use the review pages, the API and the stats page
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
        producer_partitioner=KeyPartitioner(),  # Kafka's default partitioning, the key's hash kept
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
        web_stats_enabled=settings.web_stats,  # for verified principals only (app/web/auth.py)
        web_application_options={"middlewares": [gate.stats_guard()]},
        web_graph_enabled=False,
        web_router_enabled=False,
        web_metrics_enabled=False,
        # table changelog sends can be awaited by a stage (runtime/writes.py)
        Table=TrackedTable,
        Worker=QuietWorker,
        logging_config=worker_logging_config(settings.log_level),
    )
    app.topics_by_name = topic_specs.declare(app)
    app.sensors.add(SendGuard(app))
    parts, store = settings.topic_partitions, settings.table_store_options()
    if store:  # rocksdb://: every table partition's database within one budget
        store = {**store, **rocksdb_memory.shared(settings.rocksdb_memory)}
    ctx = Context(
        settings=settings, topics=app.topics_by_name,
        ledger=Ledger(ledger.define(app, parts, store)), pending=PendingTable(pending.define(app, parts, store)),
        reviews=ReviewTable(reviews.define(app, parts, store)),
        directory=Directory(), suppressions=Suppressions(), review_queue=ReviewQueue(),
        services=services or build_services(settings), stopping=lambda: app.should_stop,
        partitions=lambda topic: app.consumer.topic_partitions(topic),
    )
    app.ctx = ctx
    for view in (ctx.directory, ctx.suppressions, ctx.review_queue, sessions):
        follow_on(app, view, settings.kafka_bootstrap)
    gate.send = lambda key, value: ctx.send_raw("callbill.sessions", key, value)  # type: ignore[arg-type]
    for stage in STAGE_MODULES:
        stage.register(app, ctx)
    producer = bridge.register(app, ctx)
    health.register(app, ctx, producer)
    admin.register(app, ctx, gate)
    credit_pages.register(app, ctx, gate)
    document_links.register(app, ctx, gate)
    provider_bounces.register(app, ctx)
    return app
