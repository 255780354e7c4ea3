"""The email as it goes on the wire: built without the header registry (issue 16), still correct."""
from __future__ import annotations

import email
import email.policy

from app.delivery import Transports
from domain.messages import Email
from runtime.settings import Settings


def test_the_email_on_the_wire_parses_back_with_both_parts_and_encoded_headers() -> None:
    s = Settings(mail_from="rechnung@billing.example.net", mail_from_name="Müller Abrechnung")
    t = Transports(s, lambda: None)
    raw = t.build_message("jane@example.org", Email(subject="Ihre Rechnung INV03-000012 – März",
                                                    text="Grüße\nBetrag: 1.234,56 €\n" + "x" * 200,
                                                    html="<p>Grüße &amp; 1.234,56 €</p>"), "<abc.invoice@billing.example.net>")
    assert raw.isascii() and b"\r\n" in raw and b"\n\n" not in raw.replace(b"\r\n", b"")
    m = email.message_from_bytes(raw, policy=email.policy.default)
    assert m["Subject"] == "Ihre Rechnung INV03-000012 – März"
    assert m["From"].addresses[0].display_name == "Müller Abrechnung"
    assert m["From"].addresses[0].addr_spec == "rechnung@billing.example.net"
    assert m["To"] == "jane@example.org" and m["Message-ID"] == "<abc.invoice@billing.example.net>"
    assert m["Auto-Submitted"] == "auto-generated" and m.get_content_type() == "multipart/alternative"
    # the wire's line ends are CRLF, in the body too
    assert m.get_body(("plain",)).get_content().replace("\r\n", "\n").rstrip("\n") == \
        "Grüße\nBetrag: 1.234,56 €\n" + "x" * 200
    assert "1.234,56 €" in m.get_body(("html",)).get_content()
    assert max(len(line) for line in raw.split(b"\r\n")) <= 998
