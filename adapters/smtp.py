"""Invoice mail over SMTP (aiosmtplib): TLS, auth, a small pool of reused connections.

`smtp://host:port` talks STARTTLS when the server offers it (`?starttls=require` insists,
`?starttls=off` never), `smtps://host:port` is implicit TLS; `user:password@` in the URL
or CALLBILL_SMTP_USERNAME/PASSWORD log in; `?ca=/path.pem` trusts a private CA. The
server's answer to DATA (`250 OK queued as 4F2A…`) is the provider id.

Replies map to adapters/sending.py: 4xx (and a refused connection) → SendRetryable; a
5xx for the recipient → SendRejected(bounce=True); another 5xx → SendRejected; the
connection dropping after the message was handed over → SendUnconfirmed.
"""
from __future__ import annotations

import asyncio
import re
import ssl
from collections.abc import Awaitable, Callable
from email.message import EmailMessage
from urllib.parse import parse_qs, unquote, urlsplit

import aiosmtplib

from adapters.sending import SendRejected, SendRetryable, SendUnconfirmed

_QUEUED = re.compile(r"queued as\s+<?([A-Za-z0-9._@-]+)>?", re.IGNORECASE)
_ENHANCED = re.compile(r"\b([245]\.\d{1,3}\.\d{1,3})\b")


def enhanced_status(text: str) -> str | None:
    m = _ENHANCED.search(text or "")
    return m.group(1) if m else None


class SmtpTransport:
    def __init__(self, url: str, *, username: str | None = None, password: str | None = None,
                 timeout: float = 30.0, pool_size: int = 4) -> None:
        u = urlsplit(url)
        if u.scheme not in ("smtp", "smtps") or not u.hostname:
            raise ValueError("CALLBILL_SMTP_URL must look like smtp://host:port or smtps://host:port")
        q = {k: v[-1] for k, v in parse_qs(u.query).items()}
        starttls = q.get("starttls", "auto")
        if starttls not in ("auto", "require", "off"):
            raise ValueError("CALLBILL_SMTP_URL: starttls must be auto, require or off")
        self.host = u.hostname
        self.implicit_tls = u.scheme == "smtps"
        self.port = u.port or (465 if self.implicit_tls else 25)
        self.start_tls = None if starttls == "auto" else starttls == "require"
        if self.implicit_tls:
            self.start_tls = False
        self.username = unquote(u.username) if u.username else username
        self.password = unquote(u.password) if u.password else password
        self.tls_context = ssl.create_default_context(cafile=q["ca"]) if "ca" in q else None
        self.timeout = timeout
        self._idle: asyncio.Queue[aiosmtplib.SMTP] = asyncio.Queue()
        self._slots = asyncio.Semaphore(pool_size)

    def __repr__(self) -> str:  # never the password
        return f"SmtpTransport({'smtps' if self.implicit_tls else 'smtp'}://{self.host}:{self.port})"

    def _client(self) -> aiosmtplib.SMTP:
        return aiosmtplib.SMTP(hostname=self.host, port=self.port, use_tls=self.implicit_tls,
                               start_tls=self.start_tls, username=self.username, password=self.password,
                               timeout=self.timeout, tls_context=self.tls_context)

    async def _connected(self) -> aiosmtplib.SMTP:
        while not self._idle.empty():
            client = self._idle.get_nowait()
            if client.is_connected:
                try:
                    await client.noop()
                    return client
                except aiosmtplib.SMTPException:
                    pass
            _close(client)
        client = self._client()
        try:
            await client.connect()
        except aiosmtplib.SMTPAuthenticationError as e:
            _close(client)
            raise SendRejected(f"smtp login refused ({e.code})") from None
        except aiosmtplib.SMTPResponseException as e:
            _close(client)
            if 400 <= e.code < 500:
                raise SendRetryable(f"smtp {e.code} on connect") from None
            raise SendRejected(f"smtp {e.code} on connect") from None
        except (aiosmtplib.SMTPException, OSError, asyncio.TimeoutError) as e:
            _close(client)
            raise SendRetryable(f"smtp unreachable ({type(e).__name__})") from None
        return client

    async def send(self, message: EmailMessage | bytes, sender: str, recipient: str,
                   on_start: Callable[[], Awaitable[None]] | None = None) -> str:
        """Send to exactly one recipient; returns the server's queue id. `on_start` is awaited
        once a connection is held, right before the message goes out (the caller's intent record)."""
        async with self._slots:
            client = await self._connected()
            keep = False
            try:
                if on_start is not None:
                    try:
                        await on_start()
                    except BaseException:
                        keep = True
                        raise
                if isinstance(message, bytes):  # built for the wire already (app/delivery.py)
                    utf8 = not (sender + recipient).isascii()
                    _errors, reply = await client.sendmail(sender, [recipient], message,
                                                           mail_options=["SMTPUTF8"] if utf8 else None)
                else:
                    _errors, reply = await client.send_message(message, sender=sender, recipients=[recipient])
                keep = True
            except aiosmtplib.SMTPRecipientsRefused as e:
                keep = True
                refused = e.recipients[0] if e.recipients else None
                code = refused.code if refused else 550
                status = enhanced_status(refused.message if refused else "")
                if 400 <= code < 500:
                    raise SendRetryable(f"smtp {code} for the recipient", recipient=True) from None
                raise SendRejected(f"smtp {code} for the recipient", bounce=True, status=status) from None
            except aiosmtplib.SMTPServerDisconnected:
                raise SendUnconfirmed("smtp connection lost during the send") from None
            except aiosmtplib.SMTPTimeoutError:
                raise SendUnconfirmed("smtp timeout during the send") from None
            except aiosmtplib.SMTPResponseException as e:
                keep = e.code != 421
                status = enhanced_status(e.message)
                if 400 <= e.code < 500:
                    raise SendRetryable(f"smtp {e.code}") from None
                raise SendRejected(f"smtp {e.code}", status=status) from None
            finally:
                if keep and client.is_connected:
                    self._idle.put_nowait(client)
                else:
                    _close(client)
        m = _QUEUED.search(reply or "")
        return m.group(1) if m else (reply or "").strip()[:100]

    async def close(self) -> None:
        while not self._idle.empty():
            client = self._idle.get_nowait()
            try:
                await client.quit()
            except Exception:  # noqa: BLE001 - closing anyway
                _close(client)


def _close(client: aiosmtplib.SMTP) -> None:
    try:
        client.close()
    except Exception:  # noqa: BLE001
        pass
