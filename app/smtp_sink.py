"""A local SMTP sink: accepts every message and stores it as an ``.eml`` file.

Run it as a process (``python -m app.smtp_sink --dir var/mail --port 2525``) or in-process
from tests through :class:`SmtpSink`.

Each stored file is the message exactly as received (``DATA`` content), preceded by two
trace headers that carry the SMTP envelope, which the message headers do not show
(e.g. Bcc recipients)::

    X-Sink-Mail-From: <sender@example.com>
    X-Sink-Rcpt-To: <a@example.com>, <b@example.com>

Files are named ``<UTC timestamp>-<counter>-<queue id>.eml`` and written atomically
(temporary file + rename), so a reader never sees a partial message. The SMTP reply to
``DATA`` is ``250 OK queued as <queue id>``.

This module uses only the standard library and aiosmtpd; it imports nothing else from
callbill.
"""

from __future__ import annotations

import argparse
import asyncio
import email
import email.policy
import itertools
import logging
import os
import signal
import socket
import sys
import threading
import time
import uuid
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.smtp import SMTP, AuthResult

log = logging.getLogger("callbill.smtp_sink")

__all__ = ["SinkHandler", "SmtpSink", "read_messages", "main"]


def _accept_any_login(server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
    """Clients configured with SMTP credentials may log in; any credentials are accepted."""
    return AuthResult(success=True)


class SinkHandler:
    """aiosmtpd handler storing every message under ``directory``."""

    def __init__(self, directory: Path | str) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._counter = itertools.count(1)
        self._lock = threading.Lock()

    def _next_name(self) -> tuple[str, str]:
        with self._lock:
            n = next(self._counter)
        queue_id = uuid.uuid4().hex[:12].upper()
        now = time.time()
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(now)) + f"{int(now % 1 * 1_000_000):06d}Z"
        return f"{stamp}-{n:06d}-{queue_id}.eml", queue_id

    def store(self, mail_from: str, rcpt_tos: list[str], content: bytes) -> tuple[Path, str]:
        name, queue_id = self._next_name()
        trace = (
            f"X-Sink-Mail-From: <{mail_from}>\r\n"
            f"X-Sink-Rcpt-To: {', '.join(f'<{r}>' for r in rcpt_tos)}\r\n"
        ).encode("utf-8", "replace")
        final = self.directory / name
        tmp = self.directory / f".{name}.tmp"
        with open(tmp, "wb") as fh:
            fh.write(trace)
            fh.write(content)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, final)
        return final, queue_id

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        content = envelope.original_content or envelope.content or b""
        if isinstance(content, str):
            content = content.encode("utf-8")
        try:
            path, queue_id = self.store(envelope.mail_from or "", list(envelope.rcpt_tos), content)
        except OSError as exc:  # disk full, permissions...
            log.error("could not store message: %s", exc)
            return "451 Requested action aborted: local error in processing"
        log.info("stored %s from=%s to=%s", path.name, envelope.mail_from, envelope.rcpt_tos)
        return f"250 OK queued as {queue_id}"


def _smtp_factory(handler: SinkHandler, hostname: str | None = None) -> SMTP:
    return SMTP(
        handler,
        hostname=hostname,
        decode_data=False,
        enable_SMTPUTF8=True,
        authenticator=_accept_any_login,
        auth_required=False,
        auth_require_tls=False,
    )


def read_messages(directory: Path | str) -> list[EmailMessage]:
    """All stored messages in ``directory``, oldest first, parsed with the default policy."""
    out: list[EmailMessage] = []
    for path in sorted(Path(directory).glob("*.eml")):
        with open(path, "rb") as fh:
            out.append(email.message_from_binary_file(fh, policy=email.policy.default))  # type: ignore[arg-type]
    return out


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class SmtpSink:
    """In-process SMTP sink for tests (runs its own event loop in a background thread).

    >>> sink = SmtpSink(tmp_path / "mail")        # port=0 picks a free port
    >>> sink.start(); ...; sink.messages(); sink.stop()

    Also usable as a (sync) context manager.
    """

    def __init__(self, directory: Path | str, host: str = "127.0.0.1", port: int = 0) -> None:
        self.directory = Path(directory)
        self.host = host
        self.port = port
        self.handler = SinkHandler(self.directory)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.base_events.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self, timeout: float = 10.0) -> "SmtpSink":
        if self._thread is not None:
            return self
        if not self.port:
            self.port = _free_port(self.host)
        ready = threading.Event()
        error: list[BaseException] = []
        loop = asyncio.new_event_loop()
        self._loop = loop

        def run() -> None:
            asyncio.set_event_loop(loop)
            try:
                self._server = loop.run_until_complete(
                    loop.create_server(lambda: _smtp_factory(self.handler), self.host, self.port)
                )
            except BaseException as exc:  # noqa: BLE001 - reported to start()
                error.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            try:
                loop.run_forever()
            finally:
                self._server.close()
                pending = asyncio.all_tasks(loop)  # open client sessions
                for task in pending:
                    task.cancel()
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
                loop.run_until_complete(self._server.wait_closed())
                loop.close()

        self._thread = threading.Thread(target=run, name=f"smtp-sink-{self.port}", daemon=True)
        self._thread.start()
        if not ready.wait(timeout):
            raise TimeoutError(f"SMTP sink did not start on {self.address} within {timeout}s")
        if error:
            self._thread = None
            raise error[0]
        return self

    def stop(self) -> None:
        if self._thread is None or self._loop is None:
            return
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._thread = None
        self._loop = None

    def messages(self) -> list[EmailMessage]:
        return read_messages(self.directory)

    def clear(self) -> None:
        for path in self.directory.glob("*.eml"):
            path.unlink(missing_ok=True)

    def __enter__(self) -> "SmtpSink":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


async def serve(directory: Path, host: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    handler = SinkHandler(directory)
    server = await loop.create_server(lambda: _smtp_factory(handler), host, port)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(sig, stop.set)
        except NotImplementedError:  # pragma: no cover - non-Unix
            pass
    log.info("SMTP sink listening on %s:%d, storing into %s", host, port, directory)
    async with server:
        await stop.wait()
    log.info("SMTP sink stopped")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app.smtp_sink", description="Store every received mail as .eml")
    parser.add_argument("--dir", required=True, type=Path, help="directory for the .eml files")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=2525)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("mail.log").setLevel(logging.WARNING)  # per-command chatter
    try:
        asyncio.run(serve(args.dir, args.host, args.port))
    except OSError as exc:
        print(f"smtp_sink: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
