"""Webhook deliveries to a receiver on loopback: signed, retried, and kept across a restart."""

from __future__ import annotations

import time

from multitalk_desktop.api.keys import get_or_create_webhook_secret
from multitalk_desktop.api.state import API_DB
from multitalk_desktop.api.webhooks import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    WebhookStore,
    sign,
    verify_signature,
)
from multitalk_desktop.jobs.engines import make_engine
from multitalk_desktop.jobs.queue import JobQueue
from multitalk_desktop.jobs.runner import Runner
from tests.api.conftest import make_context, request_body


class _store:
    def __enter__(self) -> WebhookStore:
        self.store = WebhookStore(make_context().paths.data_dir / API_DB)
        return self.store

    def __exit__(self, *exc) -> None:
        self.store.close()


def delivery_status(job_id: str, timeout: float = 10.0) -> str:
    """The outcome is recorded just after the receiver answers: wait for it."""
    deadline = time.monotonic() + timeout
    while True:
        with _store() as store:
            [row] = store.deliveries(job_id)
        if row.status != "pending" or time.monotonic() > deadline:
            return row.status
        time.sleep(0.05)


def assert_signed(received, secret: str) -> None:
    ts = received.headers[TIMESTAMP_HEADER.lower()]
    sig = received.headers[SIGNATURE_HEADER.lower()]
    assert verify_signature(secret, ts, received.body, sig)
    assert not verify_signature(secret, ts, received.body + b" ", sig)  # any change breaks it
    assert not verify_signature("whsec_other", ts, received.body, sig)


def test_completed_job_is_delivered_signed_with_the_cloud_payload(api, examples, receiver):
    body = request_body(examples)
    body["webhook_url"] = receiver.url
    job_id = api.post("/api/v1/generate", json=body).json()["job_id"]
    [delivery] = receiver.wait_for(1)
    assert_signed(delivery, get_or_create_webhook_secret(make_context()))
    payload = delivery.json()
    assert payload["job_id"] == job_id and payload["status"] == "completed"
    assert payload["timestamp"].endswith("Z") and "T" in payload["timestamp"]  # ISO 8601
    assert payload["result"]["download_url"].endswith(f"/api/v1/jobs/{job_id}/download")
    assert "error" not in payload


def test_cancelled_job_is_delivered_with_an_error(idle_api, examples, receiver):
    body = request_body(examples)
    body["webhook_url"] = receiver.url
    job_id = idle_api.post("/api/v1/generate", json=body).json()["job_id"]
    idle_api.delete(f"/api/v1/jobs/{job_id}")
    [delivery] = receiver.wait_for(1)
    payload = delivery.json()
    assert payload["status"] == "cancelled" and payload["error"]
    assert delivery.headers["x-multitalk-event"] == "job.cancelled"


def test_delivery_is_retried_after_a_500(api, examples, receiver):
    receiver.answers = [500, 500, 200]
    body = request_body(examples)
    body["webhook_url"] = receiver.url
    job_id = api.post("/api/v1/generate", json=body).json()["job_id"]
    got = receiver.wait_for(3)
    assert len(got) == 3
    assert got[0].body == got[2].body  # the same notification, not a new one
    assert delivery_status(job_id) == "delivered"
    time.sleep(0.5)
    assert len(receiver.received) == 3  # delivered: no more attempts
    with _store() as store:
        [row] = store.deliveries(job_id)
    assert (row.status, row.attempts, row.last_status_code) == ("delivered", 3, 200)


def test_pending_delivery_is_sent_after_a_server_restart(api_factory, examples, receiver):
    receiver.answers = [500]  # the receiver is down while the first server runs
    api = api_factory.start(webhook_base_delay_s=30.0)  # the next retry would be long after the stop
    body = request_body(examples)
    body["webhook_url"] = receiver.url
    job_id = api.post("/api/v1/generate", json=body).json()["job_id"]
    receiver.wait_for(1)
    api_factory.stop(api)
    with _store() as store:
        [row] = store.deliveries(job_id)
        assert (row.status, row.attempts) == ("pending", 1)
        # time passes while nothing runs: the delivery is due when the next server starts
        store._write("UPDATE deliveries SET next_attempt_at = 0 WHERE id = ?", (row.id,))

    receiver.answers = [500, 200]
    api_factory.start()
    got = receiver.wait_for(2)
    assert len(got) == 2 and got[1].json()["job_id"] == job_id
    assert delivery_status(job_id) == "delivered"


def test_job_that_ends_while_no_server_runs_is_notified_when_one_starts(api_factory, examples, receiver):
    api = api_factory.start(worker=False)
    body = request_body(examples)
    body["webhook_url"] = receiver.url
    job_id = api.post("/api/v1/generate", json=body).json()["job_id"]
    api_factory.stop(api)
    # the window (another runner on the same database) runs the job while the server is off
    with JobQueue(make_context()) as queue:
        runner = Runner(queue, lambda: make_engine("test"))
        assert runner.run_next().state == "completed"
        runner.close()
    assert receiver.received == []
    api_factory.start(worker=False)
    [delivery] = receiver.wait_for(1)
    assert delivery.json()["job_id"] == job_id and delivery.json()["status"] == "completed"


def test_webhook_test_sends_a_signed_delivery_and_reports_the_outcome(idle_api, receiver):
    r = idle_api.post("/api/v1/webhook-test", json={"url": receiver.url})
    assert r.status_code == 200
    assert r.json()["delivered"] is True and r.json()["status_code"] == 200
    [delivery] = receiver.wait_for(1)
    assert_signed(delivery, get_or_create_webhook_secret(make_context()))
    receiver.answers = [200, 503]
    r = idle_api.post("/api/v1/webhook-test", json={"url": receiver.url})
    assert r.json()["delivered"] is False and r.json()["status_code"] == 503


def test_signature_covers_timestamp_and_body():
    assert sign("s", 1, b"{}") != sign("s", 2, b"{}")
    assert sign("s", 1, b"{}") != sign("s", 1, b"{ }")
    now = 1_700_000_000
    assert verify_signature("s", str(now), b"{}", sign("s", now, b"{}"), now=now + 10)
    assert not verify_signature("s", str(now), b"{}", sign("s", now, b"{}"), now=now + 3600)  # replayed late
