"""A local SMTP sink: accepts every message and stores it as an ``.eml`` file.

Run it as a process (``python -m devtools.smtp_sink --dir var/mail --port 2525``) or in-process
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
import re
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

    def __init__(self, directory: Path | str, reject: str | None = None, bounce: str | None = None,
                 bounce_dir: Path | str | None = None) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        # test knobs: recipients refused at RCPT (550 5.1.1), recipients accepted and then
        # bounced with a DSN into `bounce_dir` (as an MTA does later), and a busy period
        self.reject = re.compile(reject, re.IGNORECASE) if reject else None
        self.bounce = re.compile(bounce, re.IGNORECASE) if bounce else None
        self.soft_bounce: re.Pattern[str] | None = None  # accepted, then a DSN with 4.2.2 (mailbox full)
        self.defer: re.Pattern[str] | None = None  # refused for now at RCPT (450 4.2.1)
        self.bounce_dir = Path(bounce_dir) if bounce_dir else self.directory / "bounces"
        self.busy_until = 0.0
        self.data_delay = 0.0  # seconds between storing a message and answering DATA
        self.busy_code = "421 4.3.2 Service not available, try again later"
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

    def busy(self, seconds: float, code: str | None = None) -> None:
        """Answer every MAIL FROM with `code` (421 by default) for `seconds`."""
        if code:
            self.busy_code = code
        self.busy_until = time.monotonic() + seconds

    async def handle_MAIL(self, server: Any, session: Any, envelope: Any, address: str, mail_options: list) -> str:
        if time.monotonic() < self.busy_until:
            return self.busy_code
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list) -> str:
        if self.reject and self.reject.search(address):
            return "550 5.1.1 Recipient address rejected: User unknown"
        if self.defer and self.defer.search(address):
            return "450 4.2.1 Mailbox busy, try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    def write_dsn(self, mail_from: str, recipient: str, content: bytes, queue_id: str, status: str = "5.1.1") -> Path:
        """A delivery status notification (RFC 3464) for `recipient`, as an MTA sends back."""
        original = email.message_from_bytes(content, policy=email.policy.compat32)
        boundary = f"dsn-{uuid.uuid4().hex}"
        kept = "".join(f"{k}: {v}\r\n" for k, v in original.items()
                       if k.lower() in ("message-id", "from", "to", "subject", "date"))
        text = (
            f"From: MAILER-DAEMON@sink.invalid\r\nTo: {mail_from}\r\n"
            f"Subject: Undelivered Mail Returned to Sender\r\nMessage-ID: <{queue_id}.dsn@sink.invalid>\r\n"
            f"MIME-Version: 1.0\r\n"
            f'Content-Type: multipart/report; report-type=delivery-status; boundary="{boundary}"\r\n\r\n'
            f"--{boundary}\r\nContent-Type: text/plain\r\n\r\n"
            f"This is the mail system at host sink.invalid. Your message could not be delivered.\r\n\r\n"
            f"--{boundary}\r\nContent-Type: message/delivery-status\r\n\r\n"
            f"Reporting-MTA: dns; sink.invalid\r\nX-Postfix-Queue-ID: {queue_id}\r\n\r\n"
            f"Final-Recipient: rfc822; {recipient}\r\nAction: failed\r\nStatus: {status}\r\n"
            f"Diagnostic-Code: smtp; {'550 5.1.1 User unknown' if status.startswith('5') else '452 4.2.2 Mailbox full'}\r\n\r\n"
            f"--{boundary}\r\nContent-Type: text/rfc822-headers\r\n\r\n{kept}\r\n"
            f"--{boundary}--\r\n"
        )
        self.bounce_dir.mkdir(parents=True, exist_ok=True)
        name = f"{queue_id}-{recipient.split('@')[0][:8]}-dsn.eml"
        tmp = self.bounce_dir / f".{name}.tmp"
        tmp.write_bytes(text.encode("utf-8", "replace"))
        os.replace(tmp, self.bounce_dir / name)
        return self.bounce_dir / name
    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        content = envelope.original_content or envelope.content or b""
        if isinstance(content, str):
            content = content.encode("utf-8")
        try:
            path, queue_id = self.store(envelope.mail_from or "", list(envelope.rcpt_tos), content)
        except OSError as exc:  # disk full, permissions...
            log.error("could not store message: %s", exc)
            return "451 Requested action aborted: local error in processing"
        log.info("stored %s for %d recipient(s)", path.name, len(envelope.rcpt_tos))  # no addresses in logs
        if self.data_delay:
            await asyncio.sleep(self.data_delay)
        for rcpt in envelope.rcpt_tos:
            if self.bounce and self.bounce.search(rcpt):
                self.write_dsn(envelope.mail_from or "", rcpt, content, queue_id)
            elif self.soft_bounce and self.soft_bounce.search(rcpt):
                self.write_dsn(envelope.mail_from or "", rcpt, content, queue_id, status="4.2.2")
        return f"250 OK queued as {queue_id}"


def _smtp_factory(handler: SinkHandler, hostname: str | None = None, tls_context: Any = None,
                  users: dict[str, str] | None = None) -> SMTP:
    def check_login(server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
        login = getattr(auth_data, "login", b"") or b""
        password = getattr(auth_data, "password", b"") or b""
        ok = users is not None and users.get(login.decode(errors="replace")) == password.decode(errors="replace")
        return AuthResult(success=ok, handled=False)

    return SMTP(
        handler,
        hostname=hostname,
        decode_data=False,
        enable_SMTPUTF8=True,
        authenticator=check_login if users else _accept_any_login,
        auth_required=bool(users),
        auth_require_tls=bool(users),
        tls_context=tls_context,
        require_starttls=bool(users) and tls_context is not None,
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

    def __init__(self, directory: Path | str, host: str = "127.0.0.1", port: int = 0, *,
                 reject: str | None = None, bounce: str | None = None, starttls: Any = None,
                 implicit_tls: Any = None, users: dict[str, str] | None = None) -> None:
        """`starttls`/`implicit_tls`: an ssl.SSLContext for the server; `users`: logins
        required (name -> password) instead of accepting any."""
        self.directory = Path(directory)
        self.host = host
        self.port = port
        self.handler = SinkHandler(self.directory, reject=reject, bounce=bounce)
        self.starttls = starttls
        self.implicit_tls = implicit_tls
        self.users = users
        self.connections = 0
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
                    loop.create_server(self._protocol, self.host, self.port, ssl=self.implicit_tls)
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

    def _protocol(self) -> SMTP:
        self.connections += 1
        return _smtp_factory(self.handler, tls_context=self.starttls, users=self.users)

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


async def serve(directory: Path, host: str, port: int, reject: str | None = None, bounce: str | None = None,
                bounce_dir: Path | None = None) -> None:
    loop = asyncio.get_running_loop()
    handler = SinkHandler(directory, reject=reject, bounce=bounce, bounce_dir=bounce_dir)
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
    parser = argparse.ArgumentParser(prog="python -m devtools.smtp_sink", description="Store every received mail as .eml")
    parser.add_argument("--dir", required=True, type=Path, help="directory for the .eml files")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=2525)
    parser.add_argument("--reject", help="regex: recipients refused at RCPT with 550 5.1.1")
    parser.add_argument("--bounce", help="regex: recipients accepted, then bounced with a DSN into --bounce-dir")
    parser.add_argument("--bounce-dir", type=Path, help="where DSNs go (default: DIR/bounces)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("mail.log").setLevel(logging.WARNING)  # per-command chatter
    try:
        asyncio.run(serve(args.dir, args.host, args.port, args.reject, args.bounce, args.bounce_dir))
    except OSError as exc:
        print(f"smtp_sink: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
