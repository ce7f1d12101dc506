"""One worker per machine; `serve` as a command; the offline docs."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import httpx

from multitalk_desktop.api.keys import get_or_create_key
from multitalk_desktop.api.worker import MachineWorkerLock
from tests.api.conftest import make_context, request_body

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_server_leaves_the_gpu_to_another_worker_and_takes_over_when_it_stops(api_factory, examples):
    window = MachineWorkerLock(make_context())  # the window holds the machine's worker lock
    assert window.try_acquire()
    try:
        api = api_factory.start()
        job_id = api.post("/api/v1/generate", json=request_body(examples)).json()["job_id"]
        time.sleep(1.0)
        assert api.get(f"/api/v1/jobs/{job_id}").json()["state"] == "queued"  # nobody else ran it
        assert api.client.get("/api/v1/health").json()["worker"] == "another worker"
    finally:
        window.release()
    deadline = time.monotonic() + 30
    while api.get(f"/api/v1/jobs/{job_id}").json()["state"] != "completed" and time.monotonic() < deadline:
        time.sleep(0.1)
    assert api.get(f"/api/v1/jobs/{job_id}").json()["state"] == "completed"
    assert api.client.get("/api/v1/health").json()["worker"] == "this server"


def test_only_one_lock_holder_at_a_time():
    ctx = make_context()
    a, b = MachineWorkerLock(ctx), MachineWorkerLock(ctx)
    assert a.try_acquire()
    assert not b.try_acquire()
    assert b.someone_holds_it()
    a.release()
    assert b.try_acquire()
    b.release()


def test_serve_command_runs_jobs_and_stops_cleanly_on_sigterm(examples):
    proc = subprocess.Popen([sys.executable, "-m", "multitalk_desktop", "serve", "--port", "0", "--test-engine"],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        m = re.search(r"(http://127\.0\.0\.1:\d+)/api/v1", line)
        assert m, line + proc.stderr.read() if proc.poll() is not None else line
        base = m.group(1)
        auth = {"Authorization": f"Bearer {get_or_create_key(make_context())}"}
        with httpx.Client(base_url=base, headers=auth, timeout=30, trust_env=False) as c:
            job_id = c.post("/api/v1/generate", json=request_body(examples)).json()["job_id"]
            deadline = time.monotonic() + 60
            while c.get(f"/api/v1/jobs/{job_id}").json()["status"] != "completed" and time.monotonic() < deadline:
                time.sleep(0.1)
            job = c.get(f"/api/v1/jobs/{job_id}").json()
        assert job["status"] == "completed"
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "TEST engine" in err


def test_serve_beyond_loopback_prints_a_warning(tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "multitalk_desktop", "serve", "--host", "0.0.0.0",
                             "--port", "0", "--no-worker"],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert "/api/v1" in proc.stdout.readline()
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    assert "WARNING" in err and "beyond this machine" in err


def test_interactive_docs_load_without_any_cdn(idle_api):
    page = idle_api.client.get("/api/v1/docs")
    assert page.status_code == 200
    assets = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert assets and all(a.startswith("/api/v1/") for a in assets), assets
    assert "cdn" not in page.text.lower()
    for asset in assets:
        assert idle_api.client.get(asset).status_code == 200, asset
    schema = idle_api.client.get("/api/v1/openapi.json").json()
    assert {"/api/v1/health", "/api/v1/generate", "/api/v1/jobs", "/api/v1/jobs/{job_id}",
            "/api/v1/jobs/{job_id}/download", "/api/v1/webhook-test"} <= set(schema["paths"])
