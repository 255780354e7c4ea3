"""Bounce notifications as the providers send them (issue 17, points 9-11), to a running worker.

Amazon SNS: messages signed (SignatureVersion 1 and 2) with a test certificate that a
loopback HTTPS server hands out, as sns.<region>.amazonaws.com would; the subscription is
confirmed by a GET of its SubscribeURL on the same server. SendGrid: events signed with a
test ECDSA P-256 key. The worker trusts the loopback server's CA (SSL_CERT_FILE) and takes
certificates from 127.0.0.1 only because CALLBILL_SNS_CERT_HOSTS says so.
"""
from __future__ import annotations

import base64
import datetime as dt
import json
import ssl
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID

from domain.provider_auth import sns_string_to_sign
from kafka_harness import Worker, free_port, read_json

TOPIC = "arn:aws:sns:eu-west-1:123456789012:callbill-bounces"


class FakeSnsHost:
    """What SNS serves: the signing certificate and the subscription confirmation URL."""

    def __init__(self, tmp_path) -> None:
        self.ca = trustme.CA()
        self.ca_file = tmp_path / "ca.pem"
        self.ca.cert_pem.write_to_path(str(self.ca_file))
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.test")])
        now = dt.datetime.now(dt.timezone.utc)
        self.cert_pem = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                         .public_key(self.key.public_key()).serial_number(1)
                         .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=1))
                         .sign(self.key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM))
        self.requests: list[str] = []
        host = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                host.requests.append(self.path)
                body = host.cert_pem if self.path.endswith(".pem") else b"<ConfirmSubscriptionResponse/>"
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.ca.issue_cert("127.0.0.1").configure_cert(tls)
        self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.base = f"https://127.0.0.1:{self.server.server_address[1]}"

    def signed(self, msg: dict, version: str = "1") -> dict:
        msg = {**msg, "SignatureVersion": version, "SigningCertURL": f"{self.base}/SimpleNotificationService-test.pem"}
        digest = hashes.SHA1() if version == "1" else hashes.SHA256()
        signature = self.key.sign(sns_string_to_sign(msg), padding.PKCS1v15(), digest)
        return {**msg, "Signature": base64.b64encode(signature).decode()}


@pytest.fixture(scope="module")
def sendgrid_key():
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture(scope="module")
def sns_host(tmp_path_factory):
    host = FakeSnsHost(tmp_path_factory.mktemp("sns"))
    yield host
    host.server.shutdown()


@pytest.fixture(scope="module")
def worker(kafka_bootstrap, tmp_path_factory, sns_host, sendgrid_key):
    public = sendgrid_key.public_key().public_bytes(serialization.Encoding.DER,
                                                    serialization.PublicFormat.SubjectPublicKeyInfo)
    w = Worker(bootstrap=kafka_bootstrap, tmp=tmp_path_factory.mktemp("providers"), extra_env={
        "CALLBILL_SNS_TOPIC_ARNS": TOPIC, "CALLBILL_SNS_CERT_HOSTS": r"^127\.0\.0\.1$",
        "SSL_CERT_FILE": str(sns_host.ca_file),
        "CALLBILL_SENDGRID_PUBLIC_KEY": base64.b64encode(public).decode()}).start()
    yield w
    w.stop()


def post(w, path: str, body: bytes, headers: dict) -> httpx.Response:
    return httpx.post(w.url + path, content=body, headers=headers, timeout=15)


def sns_post(w, msg: dict) -> httpx.Response:
    # as SNS posts: text/plain, its own headers, nothing we could have asked it to add
    return post(w, "/bounces/ses", json.dumps(msg).encode(), {
        "Content-Type": "text/plain; charset=UTF-8", "x-amz-sns-message-type": str(msg.get("Type")),
        "x-amz-sns-topic-arn": str(msg.get("TopicArn"))})


def ses_bounce(address: str, feedback: str) -> dict:
    return {"notificationType": "Bounce",
            "bounce": {"bounceType": "Permanent", "feedbackId": feedback,
                       "bouncedRecipients": [{"emailAddress": address, "status": "5.1.1",
                                              "diagnosticCode": "smtp; 550 5.1.1 user unknown"}]},
            "mail": {"commonHeaders": {"messageId": "<sns-1.invoice@callbill.example>"}}}


def notification(message: dict) -> dict:
    return {"Type": "Notification", "MessageId": str(uuid.uuid4()), "TopicArn": TOPIC,
            "Message": json.dumps(message), "Timestamp": "2026-12-03T08:00:00.000Z"}


def test_sns_subscription_is_confirmed_and_signed_notifications_are_accepted(worker, sns_host, kafka_bootstrap):
    token = uuid.uuid4().hex
    confirm = sns_host.signed({"Type": "SubscriptionConfirmation", "MessageId": str(uuid.uuid4()), "Token": token,
                               "TopicArn": TOPIC, "Message": "You have chosen to subscribe ...",
                               "SubscribeURL": f"{sns_host.base}/?Action=ConfirmSubscription&Token={token}",
                               "Timestamp": "2026-12-03T08:00:00.000Z"})
    r = sns_post(worker, confirm)
    assert r.status_code == 200 and r.json() == {"confirmed": TOPIC}, r.text
    assert f"/?Action=ConfirmSubscription&Token={token}" in sns_host.requests

    for version, address in (("1", "one@example.com"), ("2", "two@example.com")):
        r = sns_post(worker, sns_host.signed(notification(ses_bounce(address, f"fb-{version}")), version))
        assert r.status_code == 202 and r.json() == {"accepted": 1}, r.text
    # SNS retries with the same message: accepted, and carries the same event id
    again = sns_host.signed(notification(ses_bounce("two@example.com", "fb-2")), "2")
    assert sns_post(worker, again).status_code == 202
    out = read_json(kafka_bootstrap, worker.topic("callbill.bounces"), until=lambda m: len(m) >= 3)
    assert [(b["address"], b["kind"], b["source"], b["eventId"]) for b in out] == [
        ("one@example.com", "hard", "ses", "ses:fb-1/1"), ("two@example.com", "hard", "ses", "ses:fb-2/1"),
        ("two@example.com", "hard", "ses", "ses:fb-2/1")]
    assert sum(p.endswith(".pem") for p in sns_host.requests) == 1  # the certificate is fetched once


def test_sns_messages_not_proven_are_refused_and_nothing_is_published(worker, sns_host, kafka_bootstrap):
    good = sns_host.signed(notification(ses_bounce("three@example.com", "fb-3")), "2")
    tampered = {**good, "Message": json.dumps(ses_bounce("victim@example.com", "fb-3"))}
    r = sns_post(worker, tampered)
    assert r.status_code == 401 and "signature does not match" in r.text and "victim" not in r.text
    assert sns_post(worker, {**good, "TopicArn": "arn:aws:sns:eu-west-1:999:other"}).status_code == 403
    fetched = len(sns_host.requests)
    elsewhere = {**good, "SigningCertURL": "https://attacker.example/SimpleNotificationService.pem"}
    r = sns_post(worker, elsewhere)
    assert r.status_code == 401 and "allowed SNS host" in r.text and len(sns_host.requests) == fetched
    unsigned = {k: v for k, v in good.items() if k != "Signature"}
    assert sns_post(worker, unsigned).status_code == 401
    time.sleep(1)
    out = read_json(kafka_bootstrap, worker.topic("callbill.bounces"), timeout=3)
    assert not any(b["address"] in ("three@example.com", "victim@example.com") for b in out)


def sendgrid_post(w, key, events: list[dict], age: float = 0, signature: str | None = None) -> httpx.Response:
    body = json.dumps(events).encode()
    ts = str(int(time.time() - age))
    sig = signature or base64.b64encode(key.sign(ts.encode() + body, ec.ECDSA(hashes.SHA256()))).decode()
    return post(w, "/bounces/sendgrid", body, {"Content-Type": "application/json",
                                                "X-Twilio-Email-Event-Webhook-Signature": sig,
                                                "X-Twilio-Email-Event-Webhook-Timestamp": ts})


def test_sendgrid_events_are_verified_by_their_signature_and_age(worker, sendgrid_key, kafka_bootstrap):
    events = [{"email": "grid@example.com", "event": "bounce", "type": "bounce", "status": "5.1.1",
               "reason": "550 5.1.1 user unknown", "sg_event_id": "sg-ev-1", "timestamp": 1795651150},
              {"email": "grid@example.com", "event": "delivered", "sg_event_id": "sg-ev-2"}]
    r = sendgrid_post(worker, sendgrid_key, events)
    assert r.status_code == 202 and r.json() == {"accepted": 1}, r.text
    other = ec.generate_private_key(ec.SECP256R1())
    assert sendgrid_post(worker, other, events).status_code == 401  # not our key
    old = sendgrid_post(worker, sendgrid_key, events, age=3600)
    assert old.status_code == 401 and "old" in old.text
    assert sendgrid_post(worker, sendgrid_key, events, signature="bm90IGEgc2lnbmF0dXJl").status_code == 401
    out = read_json(kafka_bootstrap, worker.topic("callbill.bounces"),
                    until=lambda m: any(b["source"] == "sendgrid" for b in m))
    assert [(b["address"], b["eventId"]) for b in out if b["source"] == "sendgrid"] == [
        ("grid@example.com", "sendgrid:sg-ev-1")]
