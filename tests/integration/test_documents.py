"""Documents: PDFs into SeaweedFS (SigV4) or a directory, signed links, renewal, outages."""
from __future__ import annotations

import asyncio
import hashlib
import time
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest

from adapters.storage import S3Store, StorageError
from kafka_harness import free_port, read_json
from test_billing import billable, load_customers, produce

pytestmark = pytest.mark.kafka

ADMIN = "test-admin-token"


def s3_port() -> int:
    """SeaweedFS derives its other ports from the S3 port (devtools/devstack.py): all must be free.

    Chosen below 8333 so that every derived port (the admin gRPC one is 33646 at the default)
    stays under the kernel's ephemeral range (32768+), where the suite's own outgoing
    connections take local ports: with tests running in parallel one of them could hold it."""
    import random
    import tempfile

    from devtools.devstack import LocalS3, _port_bindable

    for _ in range(200):
        port = random.randint(6100, 7400)  # not 6066 (a worker's default web port)
        ports = [p for p, _ in LocalS3(tempfile.gettempdir(), port=port)._ports()]
        if max(ports) < 32768 and all(_port_bindable(p) for p in ports):
            return port
    raise RuntimeError("no free port range for SeaweedFS")


@pytest.fixture(scope="module")
def s3(tmp_path_factory, monkeypatch_module):
    from devtools.devstack import LocalS3

    server = LocalS3(tmp_path_factory.mktemp("s3"), port=s3_port())
    server.start()
    monkeypatch_module.setenv("AWS_ACCESS_KEY_ID", server.access_key)
    monkeypatch_module.setenv("AWS_SECRET_ACCESS_KEY", server.secret_key)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def monkeypatch_module():
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()


def s3_env(s3, **extra) -> dict[str, str]:
    return {"CALLBILL_STORAGE_URL": f"s3://{s3.bucket}/t{time.time_ns()}", "CALLBILL_S3_ENDPOINT_URL": s3.endpoint_url,
            "AWS_ACCESS_KEY_ID": s3.access_key, "AWS_SECRET_ACCESS_KEY": s3.secret_key, **extra}


def tamper(url: str) -> str:
    parts = urlsplit(url)
    q = parse_qs(parts.query)
    for name in ("sig", "X-Amz-Signature"):
        if name in q:
            v = q[name][0]
            q[name] = [v[:-1] + ("0" if v[-1] != "0" else "1")]
    return parts._replace(query=urlencode({k: v[0] for k, v in q.items()})).geturl()


def documents(bootstrap, w, n, timeout=90):
    return read_json(bootstrap, w.topic("callbill.documents"), timeout=timeout,
                     until=lambda m: len({d["interactionId"] for d in m}) >= n)


def start_pipeline(make_worker, bootstrap, n, **env):
    w = make_worker(partitions=2, extra_env={"CALLBILL_ADMIN_TOKEN": ADMIN, **env})
    w.extra_env.setdefault("CALLBILL_PUBLIC_URL", w.url)
    load_customers(bootstrap, w)
    w.start()
    produce(bootstrap, w.topic("callbill.billable"), [(f"d-{i}", billable(f"d-{i}")) for i in range(n)])
    return w


# --- the S3 adapter against SeaweedFS with SigV4 ----------------------------------------------

def test_s3_object_metadata_presigned_expiry_and_tampering(s3):
    async def go():
        store = S3Store(s3.bucket, "adapter", s3.endpoint_url, "us-east-1", sse="AES256")
        data = b"%PDF-1.7 test document"
        sha = hashlib.sha256(data).hexdigest()
        try:
            await store.put("invoices/2026/12/INV01-000001.pdf", data, filename="INV01-000001.pdf", sha256=sha)
            await store.put("invoices/2026/12/INV01-000001.pdf", data, filename="INV01-000001.pdf", sha256=sha)
            head = await store.head("invoices/2026/12/INV01-000001.pdf")
            url, _ = await store.link("invoices/2026/12/INV01-000001.pdf", 2, "INV01-000001.pdf")
            short_url = url
            long_url, _ = await store.link("invoices/2026/12/INV01-000001.pdf", 3600, "x.pdf")
            found = await store.find("INV01-000001.pdf")
            missing = await store.exists("invoices/2026/12/nope.pdf")
        finally:
            await store.aclose()
        return head, short_url, long_url, found, missing, sha, data

    head, short_url, long_url, found, missing, sha, data = asyncio.run(go())
    assert head["ContentType"] == "application/pdf" and head["ContentLength"] == len(data)
    assert head["Metadata"]["sha256"] == sha and 'filename="INV01-000001.pdf"' in head["ContentDisposition"]
    assert found == "invoices/2026/12/INV01-000001.pdf" and missing is False
    assert httpx.get(long_url).content == data
    assert httpx.get(tamper(long_url)).status_code == 403
    unsigned = urlsplit(long_url)._replace(query="").geturl()
    assert httpx.get(unsigned).status_code in (401, 403)
    time.sleep(3.5)
    assert httpx.get(short_url).status_code == 403  # expired


def test_s3_put_is_signed_for_the_server_and_its_refusals_are_named(s3, monkeypatch):
    """The PUT and the links are signed here (not by botocore's client): the server checks the
    signature over the body, keeps the headers, a refusal comes back as its S3 code, and a link
    is the very URL the client's generate_presigned_url gives."""
    async def go(secret: str):
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
        store = S3Store(s3.bucket, "signed/ü ñ", s3.endpoint_url, "us-east-1", sse="AES256")
        data = bytes(range(256)) * 60  # the size of an invoice PDF
        try:
            await store.put("invoices/2026/12/INV01-000002.pdf", data, filename="INV01-000002.pdf",
                            sha256=hashlib.sha256(data).hexdigest())
            head = await store.head("invoices/2026/12/INV01-000002.pdf")
            for _ in range(3):  # the link as botocore's client would sign it, in the same second
                ours, _ = await store.link("invoices/2026/12/INV01-000002.pdf", 600, "INV01-000002.pdf")
                theirs = await (await store._s3()).generate_presigned_url(
                    "get_object", Params={"Bucket": s3.bucket, "Key": store.full("invoices/2026/12/INV01-000002.pdf")},
                    ExpiresIn=600)
                if ours == theirs:
                    break
            assert ours == theirs and httpx.get(ours).content == data
            return data, await store.get("invoices/2026/12/INV01-000002.pdf"), head
        except StorageError as e:
            return e.reason
        finally:
            await store.aclose()

    data, back, head = asyncio.run(go(s3.secret_key))
    assert back == data and head["ContentType"] == "application/pdf"
    assert head["Metadata"]["sha256"] == hashlib.sha256(data).hexdigest()
    assert asyncio.run(go("not-the-secret")) == "S3_SignatureDoesNotMatch"


def test_s3_down_is_a_retryable_storage_error():
    async def go():
        store = S3Store("b", "", f"http://127.0.0.1:{free_port()}", "us-east-1", sse=None, timeout=2)
        try:
            await store.put("k.pdf", b"x", filename="k.pdf", sha256="0")
        finally:
            await store.aclose()

    with pytest.raises(StorageError) as e:
        asyncio.run(go())
    assert e.value.reason.startswith("S3_")


# --- the pipeline, with each backend ---------------------------------------------------------

@pytest.mark.parametrize("backend", ["file", "s3"])
def test_invoice_to_stored_pdf_with_working_and_renewable_links(make_worker, kafka_bootstrap, s3, tmp_path, backend):
    env = s3_env(s3) if backend == "s3" else {"CALLBILL_STORAGE_URL": f"file://{tmp_path}/docs"}
    w = start_pipeline(make_worker, kafka_bootstrap, 3, **env)
    docs = {d["interactionId"]: d for d in documents(kafka_bootstrap, w, 3)}
    assert set(docs) == {"d-0", "d-1", "d-2"}
    d = docs["d-0"]
    assert d["storage"] == backend and d["key"].startswith("invoices/2026/11/") and d["key"].endswith(".pdf")
    assert d["key"].rsplit("/", 1)[-1] == f"{d['invoiceNumber']}.pdf"
    r = httpx.get(d["url"])
    assert r.status_code == 200 and r.content.startswith(b"%PDF-")
    assert hashlib.sha256(r.content).hexdigest() == d["sha256"] and len(r.content) == d["size"]
    assert httpx.get(tamper(d["url"])).status_code == 403
    # the renew link from the email: a fresh working link; a tampered or foreign token: 403
    renewed = httpx.get(d["renewUrl"], follow_redirects=False)
    assert renewed.status_code == 302
    assert httpx.get(renewed.headers["Location"]).content == r.content
    other = docs["d-1"]
    token_of_other = parse_qs(urlsplit(other["renewUrl"]).query)["token"][0]
    assert httpx.get(f"{w.url}/invoices/{d['invoiceNumber']}/link", params={"token": token_of_other}).status_code == 403
    assert httpx.get(f"{w.url}/invoices/{d['invoiceNumber']}/link", params={"token": "x" + token_of_other}).status_code == 403
    # an operator gets a link by number alone (here development's admin token); a token in the URL is the customer's only
    admin = httpx.get(f"{w.url}/invoices/{d['invoiceNumber']}/link", headers={"Authorization": f"Bearer {ADMIN}"},
                      follow_redirects=False)
    assert admin.status_code == 302 and httpx.get(admin.headers["Location"]).content == r.content
    assert httpx.get(f"{w.url}/invoices/{d['invoiceNumber']}/link", params={"token": ADMIN}).status_code == 403
    audit = read_json(kafka_bootstrap, w.topic("callbill.audit"), timeout=10,
                      until=lambda m: sum(a["stage"] == "documents" for a in m) >= 3)
    assert sum(a["outcome"] == "DOCUMENTED" for a in audit if a["stage"] == "documents") == 3


def test_file_links_expire(make_worker, kafka_bootstrap, tmp_path):
    w = start_pipeline(make_worker, kafka_bootstrap, 1, CALLBILL_STORAGE_URL=f"file://{tmp_path}/docs",
                       CALLBILL_LINK_TTL="2")
    (d,) = documents(kafka_bootstrap, w, 1)
    assert httpx.get(d["url"]).status_code == 200
    time.sleep(3)
    assert httpx.get(d["url"]).status_code == 403
    fresh = httpx.get(d["renewUrl"], follow_redirects=False).headers["Location"]
    assert httpx.get(fresh).status_code == 200


def test_storage_down_for_20s_during_300_invoices(make_worker, kafka_bootstrap, s3):
    w = start_pipeline(make_worker, kafka_bootstrap, 0, **s3_env(
        s3, CALLBILL_RETRY_BASE_DELAY="1", CALLBILL_RETRY_MAX_DELAY="5", CALLBILL_STORAGE_ATTEMPTS="3"))
    produce(kafka_bootstrap, w.topic("callbill.billable"), [(f"s-{i}", billable(f"s-{i}")) for i in range(100)])
    documents(kafka_bootstrap, w, 20)
    s3.stop()
    produce(kafka_bootstrap, w.topic("callbill.billable"), [(f"s-{i}", billable(f"s-{i}")) for i in range(100, 300)])
    time.sleep(20)
    s3.start()
    docs = documents(kafka_bootstrap, w, 300, timeout=180)
    by_iid: dict[str, set[str]] = {}
    for d in docs:
        by_iid.setdefault(d["interactionId"], set()).add(d["key"])
    assert len(by_iid) == 300 and all(len(v) == 1 for v in by_iid.values())
    parked = read_json(kafka_bootstrap, w.topic("callbill.retry"), timeout=5)
    assert any(p["stage"] == "documents" for p in parked), "the outage was not noticed"
    # every object is there, once, with the right bytes
    sample = docs[-1]
    assert hashlib.sha256(httpx.get(sample["url"]).content).hexdigest() == sample["sha256"]


@pytest.mark.parametrize("backend", ["file", "s3"])
def test_a_ubl_einvoice_is_stored_served_and_renewed_beside_its_pdf(make_worker, kafka_bootstrap, s3, tmp_path,
                                                                      backend):
    from en16931_check import fatal
    from test_billing import CUSTOMERS

    env = s3_env(s3) if backend == "s3" else {"CALLBILL_STORAGE_URL": f"file://{tmp_path}/docs"}
    w = make_worker(partitions=2, extra_env={"CALLBILL_SELLER_TAX_ID": "12-3456789", **env})
    w.extra_env.setdefault("CALLBILL_PUBLIC_URL", w.url)
    load_customers(kafka_bootstrap, w, [{**CUSTOMERS[0], "einvoice": "ubl"}])
    w.start()
    produce(kafka_bootstrap, w.topic("callbill.billable"), [("e-0", billable("e-0"))])
    (d,) = documents(kafka_bootstrap, w, 1)
    e = d["einvoice"]
    assert e["format"] == "ubl" and e["key"] == d["key"].removesuffix(".pdf") + ".xml"
    r = httpx.get(e["url"])
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/xml")
    assert hashlib.sha256(r.content).hexdigest() == e["sha256"] and fatal(r.content) == []
    assert httpx.get(tamper(e["url"])).status_code == 403
    renewed = httpx.get(e["renewUrl"], follow_redirects=False)
    assert renewed.status_code == 302 and httpx.get(renewed.headers["Location"]).content == r.content
    pdf = httpx.get(d["url"])  # the PDF beside it, unchanged
    assert pdf.headers["content-type"].startswith("application/pdf") and pdf.content.startswith(b"%PDF-")
