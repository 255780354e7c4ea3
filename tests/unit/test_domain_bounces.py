"""Bounce and complaint reports from DSNs and provider webhooks, without Kafka."""
import base64
import json
from email.message import EmailMessage
from email.mime.message import MIMEMessage
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText

import pytest

from domain.bounces import (
    BounceParseError,
    BounceReport,
    classify,
    interaction_of,
    message_id,
    parse_dsn,
    parse_provider,
)

MSGID = "<c0ffee-1.invoice@callbill.example>"


def crlf(text: str) -> bytes:
    return text.replace("\n", "\r\n").encode()


POSTFIX_DSN = crlf("""\
Return-Path: <>
Received: by mx.callbill.example (Postfix) id 4XyZ1; Tue, 25 Nov 2026 12:00:05 +0000 (UTC)
Date: Tue, 25 Nov 2026 12:00:05 +0000 (UTC)
From: MAILER-DAEMON@mx.callbill.example (Mail Delivery System)
Subject: Undelivered Mail Returned to Sender
To: billing@callbill.example
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status;
\tboundary="4XyZ1.1764072005/mx.callbill.example"
Message-Id: <20261125120005.4XyZ1@mx.callbill.example>

This is a MIME-encapsulated message.

--4XyZ1.1764072005/mx.callbill.example
Content-Description: Notification
Content-Type: text/plain; charset=us-ascii

This is the mail system at host mx.callbill.example.

I'm sorry to have to inform you that your message could not
be delivered to one or more recipients.

<Jane.Doe@Example.COM>: host mx.example.com[192.0.2.10] said: 550 5.1.1
    <jane.doe@example.com>: Recipient address rejected: User unknown

--4XyZ1.1764072005/mx.callbill.example
Content-Description: Delivery report
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.callbill.example
X-Postfix-Queue-ID: 4XyZ1
X-Postfix-Sender: rfc822; billing@callbill.example
Arrival-Date: Tue, 25 Nov 2026 12:00:01 +0000 (UTC)

Final-Recipient: rfc822; Jane.Doe@Example.COM
Original-Recipient: rfc822;Jane.Doe@Example.COM
Action: failed
Status: 5.1.1
Remote-MTA: dns; mx.example.com
Diagnostic-Code: smtp; 550 5.1.1 <jane.doe@example.com>: Recipient address
    rejected: User unknown

--4XyZ1.1764072005/mx.callbill.example
Content-Description: Undelivered Message Headers
Content-Type: text/rfc822-headers

Return-Path: <billing@callbill.example>
Received: from app (app [10.0.0.5]) by mx.callbill.example (Postfix)
From: billing@callbill.example
To: Jane.Doe@Example.COM
Subject: Your invoice INV-2026-000123
Message-ID: <c0ffee-1.invoice@callbill.example>
Date: Tue, 25 Nov 2026 12:00:00 +0000

--4XyZ1.1764072005/mx.callbill.example--
""")


def dsn(recipient_blocks: list[str], original=None, status_type="message/delivery-status",
        encoding=None) -> bytes:
    """A DSN as another MTA would send it (literal text: the generator wants parsed blocks)."""
    fields = "\n\n".join(["Reporting-MTA: dns; relay.example.net\nArrival-Date: Tue, 25 Nov 2026 12:00:01 +0000",
                          *recipient_blocks]) + "\n"
    cte = ""
    if encoding == "base64":
        fields, cte = base64.encodebytes(crlf(fields)).decode(), "Content-Transfer-Encoding: base64\n"
    original_part = ""
    if original is not None:
        original_part = "--BOUNDARY\n" + original.as_string().replace("\r\n", "\n") + "\n"
    return crlf(f"""\
From: MAILER-DAEMON@relay.example.net
To: billing@callbill.example
Subject: Delivery Status Notification (Failure)
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="BOUNDARY"

--BOUNDARY
Content-Type: text/plain; charset=utf-8

Your message could not be delivered.

--BOUNDARY
Content-Type: {status_type}
{cte}
{fields}
{original_part}--BOUNDARY--
""")


def original_message(msgid=MSGID) -> MIMEMessage:
    sent = EmailMessage()
    sent["From"] = "billing@callbill.example"
    sent["To"] = "ops@example.org"
    sent["Subject"] = "Your invoice"
    sent["Message-ID"] = msgid
    sent.set_content("Please find your invoice attached.\n")
    return MIMEMessage(sent)


# --- DSN ----------------------------------------------------------------------------

def test_postfix_dsn_gives_one_hard_bounce_with_our_message_id():
    assert parse_dsn(POSTFIX_DSN) == [BounceReport(
        address="jane.doe@example.com", kind="hard", status="5.1.1",
        diagnostic="550 5.1.1 <address>: Recipient address rejected: User unknown",
        messageId=MSGID, source="dsn")]


def test_dsn_in_an_eml_with_leading_trace_headers_and_mbox_from_line():
    wrapped = (b"From MAILER-DAEMON Tue Nov 25 12:00:05 2026\r\n"
               b"X-Sink-Mail-From: <>\r\nX-Sink-Rcpt-To: <billing@callbill.example>\r\n" + POSTFIX_DSN)
    [report] = parse_dsn(wrapped)
    assert (report.address, report.kind, report.messageId) == ("jane.doe@example.com", "hard", MSGID)


def test_delayed_dsn_is_a_soft_bounce():
    raw = dsn(["Final-Recipient: rfc822; slow@example.net\nAction: delayed\nStatus: 4.4.1\n"
               "Diagnostic-Code: smtp; 421 4.4.1 Connection timed out\n"
               "Will-Retry-Until: Fri, 28 Nov 2026 12:00:01 +0000"])
    assert parse_dsn(raw) == [BounceReport(address="slow@example.net", kind="soft", status="4.4.1",
                                           diagnostic="421 4.4.1 Connection timed out", messageId=None,
                                           source="dsn")]


def test_only_failed_recipients_are_reported():
    raw = dsn(["Final-Recipient: rfc822; gone@example.net\nAction: failed\nStatus: 5.2.1\n"
               "Diagnostic-Code: smtp; 550 5.2.1 mailbox disabled",
               "Final-Recipient: rfc822; ok@example.net\nAction: delivered\nStatus: 2.0.0",
               "Final-Recipient: rfc822; onward@example.net\nAction: relayed\nStatus: 2.0.0"],
              original=original_message())
    assert [(r.address, r.kind, r.status, r.messageId) for r in parse_dsn(raw)] == [
        ("gone@example.net", "hard", "5.2.1", MSGID)]


def test_message_rfc822_original_supplies_the_message_id():
    raw = dsn(["Final-Recipient: rfc822; <Ops@Example.ORG>\nAction: failed\nStatus: 5.7.1"],
              original=original_message("<abc_9.ack@callbill.example>"))
    [report] = parse_dsn(raw)
    assert report.address == "ops@example.org"
    assert report.messageId == "<abc_9.ack@callbill.example>"
    assert interaction_of(report.messageId, "callbill.example") == "abc_9"


def test_original_recipient_is_used_without_final_recipient():
    raw = dsn(["Original-Recipient: rfc822; Alias@Example.net\nAction: failed\nStatus: 5.1.1"])
    assert parse_dsn(raw)[0].address == "alias@example.net"


def test_failed_without_status_is_hard_and_status_may_come_from_the_diagnostic():
    assert parse_dsn(dsn(["Final-Recipient: rfc822; a@example.net\nAction: failed"]))[0].kind == "hard"
    raw = dsn(["Final-Recipient: rfc822; b@example.net\nAction: failed\n"
               "Diagnostic-Code: smtp; host 10.2.3.4 said: 452 4.2.2 mailbox full"])
    [report] = parse_dsn(raw)
    assert (report.kind, report.status) == ("soft", "4.2.2")


def test_delivery_status_as_raw_text_is_parsed_too():
    """Encoded or RFC 6533 global status parts reach us as text, not as parsed blocks."""
    block = "Final-Recipient: rfc822; a@example.net\nAction: failed\nStatus: 5.1.1"
    for raw in (dsn([block], encoding="base64"),
                dsn([block], status_type="message/global-delivery-status")):
        assert [(r.address, r.kind, r.status) for r in parse_dsn(raw)] == [("a@example.net", "hard", "5.1.1")]


def test_all_delivered_dsn_gives_no_reports():
    raw = dsn(["Final-Recipient: rfc822; ok@example.net\nAction: delivered\nStatus: 2.0.0"])
    assert parse_dsn(raw) == []


def test_non_dsn_mail_is_refused():
    mail = EmailMessage()
    mail["From"] = "someone@example.net"
    mail["Subject"] = "Re: your invoice"
    mail.set_content("Thanks, paid.\n")
    with pytest.raises(BounceParseError, match="^not a delivery status notification$"):
        parse_dsn(mail.as_bytes())
    with pytest.raises(BounceParseError, match="not a delivery status notification"):
        parse_dsn(b"")


def test_dsn_without_recipient_block_is_refused():
    with pytest.raises(BounceParseError, match="not a delivery status notification: no recipient block"):
        parse_dsn(dsn([]))


def test_report_without_delivery_status_part_is_refused():
    arf = MIMEMultipart("report", report_type="feedback-report")
    arf.attach(MIMEText("This is an abuse report.\n"))
    with pytest.raises(BounceParseError, match="not a delivery status notification"):
        parse_dsn(arf.as_bytes())


def test_recipient_block_without_usable_address_is_refused_without_naming_anything():
    raw = dsn(["Final-Recipient: x400; /c=us/a=att/o=example/\nAction: failed\nStatus: 5.1.1"])
    with pytest.raises(BounceParseError, match="^recipient block 1 has no recipient address$"):
        parse_dsn(raw)


# --- classify -----------------------------------------------------------------------

@pytest.mark.parametrize("action,status,kind", [
    ("failed", "5.1.1", "hard"), ("Failed", "5.0.0 (permanent)", "hard"), ("failed", None, "hard"),
    ("failed", "4.4.7", "soft"), ("delayed", "4.4.1", "soft"), ("delayed", None, "soft"),
    (None, "4.2.2", "soft"), ("delivered", "2.0.0", None), ("relayed", None, None),
    ("expanded", "2.0.0", None), (None, None, None), (None, "5.1.1", None),
])
def test_classify(action, status, kind):
    assert classify(action, status) == kind


# --- Amazon SES ---------------------------------------------------------------------

def ses_mail():
    return {"timestamp": "2026-11-25T12:00:00.000Z", "source": "billing@callbill.example",
            "messageId": "0102019abc-ses-own-id-000000", "destination": ["jane@example.com"],
            "headersTruncated": False,
            "headers": [{"name": "From", "value": "billing@callbill.example"},
                        {"name": "Message-ID", "value": MSGID}],
            "commonHeaders": {"from": ["billing@callbill.example"], "to": ["jane@example.com"],
                              "messageId": MSGID, "subject": "Your invoice"}}


def ses_bounce(bounce_type="Permanent", **recipient):
    entry = {"emailAddress": "Jane@Example.com", "action": "failed", "status": "5.1.1",
             "diagnosticCode": "smtp; 550 5.1.1 user unknown <jane@example.com>"}
    entry.update(recipient)
    return {"notificationType": "Bounce", "mail": ses_mail(),
            "bounce": {"bounceType": bounce_type, "bounceSubType": "General", "bouncedRecipients": [entry],
                       "timestamp": "2026-11-25T12:00:03.000Z", "feedbackId": "0102019abc-feedback"}}


def test_ses_permanent_bounce_is_hard_with_our_message_id():
    assert parse_provider(ses_bounce()) == [BounceReport(
        address="jane@example.com", kind="hard", status="5.1.1",
        diagnostic="550 5.1.1 user unknown <address>", messageId=MSGID, source="ses",
        eventId="ses:0102019abc-feedback/1")]  # SES's feedbackId: a retry or a replay has the same


@pytest.mark.parametrize("bounce_type", ["Transient", "Undetermined"])
def test_ses_transient_and_undetermined_bounces_are_soft(bounce_type):
    [report] = parse_provider(ses_bounce(bounce_type, status="4.4.7",
                                         diagnosticCode="smtp; 450 4.4.7 mailbox busy"))
    assert (report.kind, report.status) == ("soft", "4.4.7")


def test_ses_complaint():
    note = {"notificationType": "Complaint", "mail": ses_mail(),
            "complaint": {"complainedRecipients": [{"emailAddress": "jane@example.com"}],
                          "complaintFeedbackType": "abuse", "timestamp": "2026-11-25T13:00:00.000Z"}}
    assert parse_provider(note) == [BounceReport(address="jane@example.com", kind="complaint", status=None,
                                                 diagnostic="abuse", messageId=MSGID, source="ses")]


def test_ses_via_sns_and_event_publishing():
    note = ses_bounce()
    sns = {"Type": "Notification", "MessageId": "sns-1", "TopicArn": "arn:aws:sns:eu-west-1:1:bounces",
           "Message": json.dumps(note), "Timestamp": "2026-11-25T12:00:04.000Z"}
    assert parse_provider(sns) == parse_provider(note)
    event = dict(note)
    event["eventType"] = event.pop("notificationType")
    assert parse_provider(event) == parse_provider(note)


def test_ses_message_id_falls_back_to_the_header_never_to_ses_own_id():
    note = ses_bounce()
    del note["mail"]["commonHeaders"]["messageId"]
    note["mail"]["headers"][1]["name"] = "message-id"
    assert parse_provider(note)[0].messageId == MSGID
    note["mail"]["headers"] = []
    assert parse_provider(note)[0].messageId is None


def test_ses_delivery_notification_is_not_a_bounce():
    assert parse_provider({"notificationType": "Delivery", "mail": ses_mail(), "delivery": {}}) == []


def test_ses_entry_without_address_names_the_entry_only():
    note = ses_bounce()
    note["bounce"]["bouncedRecipients"].append({"status": "5.1.1"})
    with pytest.raises(BounceParseError, match="^bounce entry 2 has no recipient address$"):
        parse_provider(note)


def test_sns_subscription_confirmation_and_bad_message_are_refused():
    with pytest.raises(BounceParseError, match="SubscriptionConfirmation"):
        parse_provider({"Type": "SubscriptionConfirmation", "Message": "You have chosen to subscribe"})
    with pytest.raises(BounceParseError, match="not JSON"):
        parse_provider({"Type": "Notification", "Message": "{oops"})


# --- SendGrid -----------------------------------------------------------------------

SENDGRID = [
    {"email": "Hard@Example.com", "timestamp": 1764072005, "event": "bounce", "type": "bounce",
     "status": "5.1.1", "reason": "550 5.1.1 The email account that you tried to reach does not exist",
     "smtp-id": MSGID, "sg_event_id": "ev1", "sg_message_id": "sg1.filter"},
    {"email": "blocked@example.com", "timestamp": 1764072006, "event": "bounce", "type": "blocked",
     "status": "4.0.0", "reason": "IP listed on a blocklist", "smtp-id": "<c0ffee-2.ack@callbill.example>"},
    {"email": "spam@example.com", "timestamp": 1764072007, "event": "spamreport", "smtp-id": MSGID},
    {"email": "fine@example.com", "timestamp": 1764072008, "event": "delivered", "response": "250 OK",
     "smtp-id": MSGID},
    {"email": "later@example.com", "timestamp": 1764072009, "event": "deferred",
     "response": "421 try again later", "attempt": "1", "smtp-id": MSGID},
    {"email": "never@example.com", "timestamp": 1764072010, "event": "dropped", "reason": "Bounced Address",
     "smtp-id": MSGID},
]


def test_sendgrid_event_list():
    assert [(r.address, r.kind, r.status, r.messageId, r.source) for r in parse_provider(SENDGRID)] == [
        ("hard@example.com", "hard", "5.1.1", MSGID, "sendgrid"),
        ("blocked@example.com", "soft", "4.0.0", "<c0ffee-2.ack@callbill.example>", "sendgrid"),
        ("spam@example.com", "complaint", None, MSGID, "sendgrid"),
        ("later@example.com", "soft", None, MSGID, "sendgrid"),
        ("never@example.com", "hard", None, MSGID, "sendgrid"),
    ]
    assert parse_provider(SENDGRID)[3].diagnostic == "421 try again later"


def test_sendgrid_single_event_and_missing_address():
    assert parse_provider(SENDGRID[0]) == parse_provider(SENDGRID[:1])
    with pytest.raises(BounceParseError, match="^bounce entry 2 has no recipient address$"):
        parse_provider([SENDGRID[0], {"event": "bounce", "email": "", "reason": "550 unknown"}])


@pytest.mark.parametrize("garbage", [
    {"hello": "world"}, "not json at all", 42, None, [1, 2], [{"email": "x@example.com"}],
    {"Type": "Notification", "Message": json.dumps({"foo": 1})},
])
def test_garbage_is_refused(garbage):
    with pytest.raises(BounceParseError):
        parse_provider(garbage)


def test_unknown_object_error_names_the_problem():
    with pytest.raises(BounceParseError, match="unknown provider notification"):
        parse_provider({"hello": "world"})


# --- diagnostics and errors carry no addresses --------------------------------------

def test_diagnostic_redacts_addresses_and_is_short():
    [report] = parse_provider(ses_bounce(diagnosticCode="smtp; 550 rejected: jane@example.com, "
                                                        "<boss@corp.example> and "
                                                        "\"x\"@y.z " + "blah " * 100))
    assert "@" not in report.diagnostic
    assert report.diagnostic.startswith("550 rejected: <address>, <address> and")
    assert len(report.diagnostic) <= 200


def test_no_error_message_names_an_address():
    cases = [lambda: parse_dsn(dsn(["Final-Recipient: rfc822; broken-at-example.com\nAction: failed"])),
             lambda: parse_provider([{"event": "bounce", "email": "not-an-address"}]),
             lambda: parse_provider({"bounce": {"bouncedRecipients": [{"emailAddress": "a@b.c"}]}})]
    for case in cases:
        with pytest.raises(BounceParseError) as err:
            case()
        assert "@" not in str(err.value) and "address-at" not in str(err.value)


# --- Message-IDs --------------------------------------------------------------------

def test_message_id_round_trip():
    iid = "3f0c6a2e-1b7d-4c55-9a8e-0d2b6f4e9a11"
    for kind in ("invoice", "ack"):
        mid = message_id(iid, kind, "callbill.example")
        assert mid == f"<{iid}.{kind}@callbill.example>"
        assert interaction_of(mid) == iid
        assert interaction_of(mid, "CallBill.Example") == iid


@pytest.mark.parametrize("mid", [
    "<c0ffee-1.invoice@other.example>",                # foreign domain
    "<c0ffee-1.receipt@callbill.example>",             # unknown kind
    "<c0ffee.1.invoice@callbill.example>",             # dot in the id
    "<20261125120005.4XyZ1@mx.callbill.example>",      # an MTA's id
    "c0ffee-1.invoice@callbill.example>",              # broken brackets
    "", None,
])
def test_interaction_of_rejects_other_forms(mid):
    assert interaction_of(mid, "callbill.example") is None


def test_interaction_of_without_domain_accepts_any_domain():
    assert interaction_of("<c0ffee-1.invoice@other.example>") == "c0ffee-1"


@pytest.mark.parametrize("iid,kind,domain", [
    ("has space", "invoice", "callbill.example"), ("a.b", "invoice", "callbill.example"),
    ("", "ack", "callbill.example"), ("abc", "receipt", "callbill.example"), ("abc", "ack", "a@b"),
    ("abc", "ack", ""),
])
def test_message_id_validates(iid, kind, domain):
    with pytest.raises(ValueError):
        message_id(iid, kind, domain)
