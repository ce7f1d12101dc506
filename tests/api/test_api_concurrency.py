"""Many clients at once: nothing lost, nothing doubled."""

from __future__ import annotations

import threading

import httpx

from multitalk_desktop.api.ratelimit import RateLimit
from multitalk_desktop.jobs.store import JobStore
from tests.api.conftest import make_context, request_body

SUBMITS = 50


def test_fifty_concurrent_submits_give_fifty_distinct_jobs(api_factory, examples):
    api = api_factory.start(worker=False, rate_limit=RateLimit(per_minute=600, burst=SUBMITS))
    body = request_body(examples)
    results: list[httpx.Response | BaseException] = []
    lock = threading.Lock()
    go = threading.Barrier(SUBMITS)

    def submit() -> None:
        try:
            with httpx.Client(base_url=api.url, timeout=120, trust_env=False) as client:
                go.wait()
                r = client.post("/api/v1/generate", json=body, headers=api.auth)
        except BaseException as err:  # recorded, so the assertion below names it
            r = err
        with lock:
            results.append(r)

    threads = [threading.Thread(target=submit) for _ in range(SUBMITS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(180)
    assert len(results) == SUBMITS
    failures = [r if isinstance(r, BaseException) else r.text for r in results
                if isinstance(r, BaseException) or r.status_code != 200]
    assert not failures
    ids = {r.json()["job_id"] for r in results}
    assert len(ids) == SUBMITS
    with JobStore(make_context().paths.database) as store:
        assert {j.id for j in store.list_jobs(limit=1000)} == ids
    assert api.get("/api/v1/jobs", params={"limit": 1000}).json()["total"] == SUBMITS
