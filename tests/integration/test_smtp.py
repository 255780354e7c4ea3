"""The SMTP transport against a real aiosmtpd server on loopback: TLS, auth, reuse, replies."""
from __future__ import annotations

import asyncio
import ssl
from email.message import EmailMessage

import pytest
import trustme

from adapters.sending import SendRejected, SendRetryable
from adapters.smtp import SmtpTransport
from devtools.smtp_sink import SmtpSink


def message(n: int = 1) -> EmailMessage:
    m = EmailMessage()
    m["From"] = "invoices@callbill.example"
    m["To"] = "jane@example.com"
    m["Subject"] = f"Your invoice INV-{n:06d}"
    m["Message-ID"] = f"<c0ffee-{n}.invoice@callbill.example>"
    m.set_content("hello")
    return m


@pytest.fixture(scope="module")
def tls(tmp_path_factory):
    ca = trustme.CA()
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(server)
    path = tmp_path_factory.mktemp("ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return server, path


def run(coro):
    return asyncio.run(coro)


def test_starttls_with_auth_and_connection_reuse(tmp_path, tls):
    server_ctx, ca = tls
    with SmtpSink(tmp_path / "mail", starttls=server_ctx, users={"mailer": "pa55 word"}) as sink:
        async def go():
            t = SmtpTransport(f"smtp://mailer:pa55%20word@127.0.0.1:{sink.port}?starttls=require&ca={ca}")
            ids = [await t.send(message(i), "invoices@callbill.example", "jane@example.com") for i in range(3)]
            await t.close()
            return ids
        ids = run(go())
        assert len(set(ids)) == 3 and all(len(i) == 12 for i in ids)  # the sink's queue ids
        assert len(sink.messages()) == 3
        assert sink.connections == 1  # one connection for the three sends
        assert all(i in {p.name.split("-")[2].split(".")[0] for p in (tmp_path / "mail").glob("*.eml")} for i in ids)


def test_wrong_password_is_refused_and_names_no_secret(tmp_path, tls):
    server_ctx, ca = tls
    with SmtpSink(tmp_path / "mail", starttls=server_ctx, users={"mailer": "right"}) as sink:
        async def go():
            t = SmtpTransport(f"smtp://mailer:wrong@127.0.0.1:{sink.port}?ca={ca}")
            await t.send(message(), "invoices@callbill.example", "jane@example.com")
        with pytest.raises(SendRejected) as e:
            run(go())
        assert "wrong" not in str(e.value) and "login" in str(e.value)
        assert "wrong" not in repr(SmtpTransport(f"smtp://mailer:wrong@127.0.0.1:{sink.port}"))


def test_implicit_tls(tmp_path, tls):
    server_ctx, ca = tls
    with SmtpSink(tmp_path / "mail", implicit_tls=server_ctx) as sink:
        async def go():
            t = SmtpTransport(f"smtps://127.0.0.1:{sink.port}?ca={ca}")
            return await t.send(message(), "invoices@callbill.example", "jane@example.com")
        assert run(go())
        assert len(sink.messages()) == 1


def test_replies_map_to_retry_bounce_and_unreachable(tmp_path):
    with SmtpSink(tmp_path / "mail", reject=r"@dead\.example$") as sink:
        async def go():
            t = SmtpTransport(f"smtp://127.0.0.1:{sink.port}")
            with pytest.raises(SendRejected) as bounced:
                await t.send(message(), "invoices@callbill.example", "gone@dead.example")
            assert bounced.value.bounce and bounced.value.status == "5.1.1"
            assert "dead.example" not in str(bounced.value)
            sink.handler.busy(0.5)
            with pytest.raises(SendRetryable) as busy:
                await t.send(message(), "invoices@callbill.example", "jane@example.com")
            assert "421" in busy.value.reason
            await asyncio.sleep(0.6)
            assert await t.send(message(), "invoices@callbill.example", "jane@example.com")
        run(go())
        assert len(sink.messages()) == 1

    async def down():
        t = SmtpTransport(f"smtp://127.0.0.1:{sink.port}", timeout=2)
        await t.send(message(), "invoices@callbill.example", "jane@example.com")
    with pytest.raises(SendRetryable):
        run(down())
