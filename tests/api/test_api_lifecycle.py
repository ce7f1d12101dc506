"""The full job life cycle over HTTP against a real server and the test engine."""

from __future__ import annotations

import time

import httpx

from multitalk_desktop.jobs.queue import JobQueue
from multitalk_desktop.jobs.spec import JobRequest
from multitalk_desktop.jobs.store import JobStore
from tests.api.conftest import make_context, request_body


def wait_for_status(api, job_id: str, statuses: tuple[str, ...], timeout: float = 60.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        body = api.get(f"/api/v1/jobs/{job_id}").json()
        if body["status"] in statuses or time.monotonic() > deadline:
            return body
        time.sleep(0.05)


def test_submitted_job_runs_and_its_video_downloads_whole_and_in_ranges(api, examples):
    r = api.post("/api/v1/generate", json=request_body(examples))
    assert r.status_code == 200, r.text
    created = r.json()
    assert created["status"] == "pending" and created["state"] == "queued"

    done = wait_for_status(api, created["job_id"], ("completed", "failed"))
    assert done["status"] == "completed", done
    assert done["progress"]["percent"] == 100.0
    assert done["result"]["download_url"].endswith(f"/api/v1/jobs/{created['job_id']}/download")

    whole = api.get(f"/api/v1/jobs/{created['job_id']}/download")
    assert whole.status_code == 200
    assert whole.headers["content-type"] == "video/mp4"
    assert whole.content[4:8] == b"ftyp"  # an MP4, not an error page
    assert len(whole.content) == done["result"]["size_bytes"]

    part = api.get(f"/api/v1/jobs/{created['job_id']}/download", headers={"Range": "bytes=10-109"})
    assert part.status_code == 206
    assert part.content == whole.content[10:110]
    assert part.headers["content-range"] == f"bytes 10-109/{len(whole.content)}"


def test_progress_reports_clip_step_percent_and_eta_while_running(api_factory, examples):
    api = api_factory.start(step_seconds=0.05)
    job_id = api.post("/api/v1/generate", json=request_body(examples, sample_steps=20)).json()["job_id"]
    seen = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        body = api.get(f"/api/v1/jobs/{job_id}").json()
        if body["status"] == "processing" and body["progress"]["step"] > 0:
            seen.append(body["progress"])
        if body["status"] == "completed" or len(seen) >= 3:
            break
        time.sleep(0.1)
    assert seen, "never saw a running job with progress"
    p = seen[-1]
    assert p["clips"] >= 1 and 1 <= p["clip"] <= p["clips"]
    assert p["steps"] == 20 and 1 <= p["step"] <= 20
    assert 0 < p["percent"] < 100
    assert p["eta_seconds"] is not None and p["eta_seconds"] >= 0
    api.delete(f"/api/v1/jobs/{job_id}")


def test_signed_download_url_works_without_key_and_not_when_tampered(api, examples):
    job_id = api.post("/api/v1/generate", json=request_body(examples)).json()["job_id"]
    assert wait_for_status(api, job_id, ("completed", "failed"))["status"] == "completed"
    signed = api.get(f"/api/v1/jobs/{job_id}/download", params={"url": 1, "expires_in": 120}).json()
    assert signed["url"].startswith(api.url)
    with httpx.Client(trust_env=False) as anonymous:
        ok = anonymous.get(signed["url"])
        assert ok.status_code == 200 and ok.content[4:8] == b"ftyp"
        tampered = signed["url"][:-4] + ("0000" if not signed["url"].endswith("0000") else "1111")
        assert anonymous.get(tampered).status_code == 401
        expired = signed["url"].replace("expires=", "expires=1")  # another expiry: signature no longer matches
        assert anonymous.get(expired).status_code == 401
        assert anonymous.get(f"{api.url}/api/v1/jobs/{job_id}/download").status_code == 401


def test_download_of_an_unfinished_job_is_refused_with_409(idle_api, examples):
    job_id = idle_api.post("/api/v1/generate", json=request_body(examples)).json()["job_id"]
    r = idle_api.get(f"/api/v1/jobs/{job_id}/download")
    assert r.status_code == 409
    assert "queued" in r.json()["detail"]


def test_history_is_newest_first_with_limit_offset_and_status_filter(idle_api, examples):
    ids = [idle_api.post("/api/v1/generate", json=request_body(examples)).json()["job_id"] for _ in range(4)]
    idle_api.delete(f"/api/v1/jobs/{ids[1]}")

    everything = idle_api.get("/api/v1/jobs", params={"limit": 100}).json()
    assert [j["job_id"] for j in everything["jobs"]] == ids[::-1]
    assert everything["total"] == 4

    page = idle_api.get("/api/v1/jobs", params={"limit": 2, "offset": 1}).json()
    assert [j["job_id"] for j in page["jobs"]] == [ids[2], ids[1]]

    pending = idle_api.get("/api/v1/jobs", params={"status": "pending"}).json()
    assert [j["job_id"] for j in pending["jobs"]] == [ids[3], ids[2], ids[0]]
    cancelled = idle_api.get("/api/v1/jobs", params={"status": "cancelled"}).json()
    assert [j["job_id"] for j in cancelled["jobs"]] == [ids[1]]
    assert idle_api.get("/api/v1/jobs", params={"state": "cancelled"}).json()["total"] == 1
    assert idle_api.get("/api/v1/jobs").json()["limit"] == 10  # the cloud service's default


def test_cancel_of_a_queued_job_is_immediate_and_idempotent(idle_api, examples):
    job_id = idle_api.post("/api/v1/generate", json=request_body(examples)).json()["job_id"]
    first = idle_api.delete(f"/api/v1/jobs/{job_id}")
    assert first.status_code == 200
    assert first.json()["status"] == "cancelled" and first.json()["state"] == "cancelled"
    again = idle_api.delete(f"/api/v1/jobs/{job_id}")
    assert again.status_code == 200 and again.json()["status"] == "cancelled"


def test_cancel_of_a_running_job_stops_the_engine_and_keeps_no_video(api_factory, examples):
    api = api_factory.start(step_seconds=0.05)
    job_id = api.post("/api/v1/generate", json=request_body(examples, sample_steps=100)).json()["job_id"]
    assert wait_for_status(api, job_id, ("processing", "completed"))["status"] == "processing"
    r = api.delete(f"/api/v1/jobs/{job_id}")
    assert r.status_code == 200
    body = wait_for_status(api, job_id, ("cancelled", "completed", "failed"), timeout=10)
    assert body["status"] == "cancelled"
    assert body["progress"]["step"] < 100  # stopped mid-way, not after running to the end
    stopped_at = body["progress"]
    time.sleep(0.5)
    later = api.get(f"/api/v1/jobs/{job_id}").json()
    assert later["status"] == "cancelled" and later["progress"] == stopped_at  # nothing ran on
    assert later["result"] is None
    assert api.get(f"/api/v1/jobs/{job_id}/download").status_code == 409


def test_cancel_of_a_completed_job_answers_409_and_keeps_it_completed(api, examples):
    job_id = api.post("/api/v1/generate", json=request_body(examples)).json()["job_id"]
    assert wait_for_status(api, job_id, ("completed", "failed"))["status"] == "completed"
    r = api.delete(f"/api/v1/jobs/{job_id}")
    assert r.status_code == 409
    assert api.get(f"/api/v1/jobs/{job_id}").json()["status"] == "completed"


def test_job_submitted_over_http_is_in_the_store_the_window_reads_and_back(idle_api, examples):
    job_id = idle_api.post("/api/v1/generate", json=request_body(examples)).json()["job_id"]
    ctx = make_context()
    with JobStore(ctx.paths.database) as store:
        assert store.get(job_id).state == "queued"
    # and a job queued by the window (another queue on the same database) shows up over HTTP
    with JobQueue(ctx) as window_queue:
        window_job = window_queue.submit(JobRequest(image=str(examples / "single1.png"),
                                                    audio=[str(examples / "1.wav")], resolution="64x64"))
    listed = [j["job_id"] for j in idle_api.get("/api/v1/jobs").json()["jobs"]]
    assert listed[:2] == [window_job.id, job_id]


def test_every_accepted_option_reaches_the_job(idle_api, examples):
    body = request_body(examples, voices=2, resolution="128x64", sample_steps=7, audio_type="para",
                        audio_cfg=3.5, color_correction=0.7, seed=1234, mode="fast",
                        boxes=[[10, 10, 200, 300], [300, 10, 500, 300]], text_cfg=2.5, max_duration=2.0)
    r = idle_api.post("/api/v1/generate", json=body)
    assert r.status_code == 200, r.text
    job = idle_api.get(f"/api/v1/jobs/{r.json()['job_id']}").json()
    req = job["request"]
    assert (req["resolution"], req["steps"], req["audio_type"]) == ("128x64", 7, "para")
    assert (req["audio_guidance"], req["text_guidance"], req["color_correction"]) == (3.5, 2.5, 0.7)
    assert (req["seed"], req["mode"], req["max_duration"]) == (1234, "fast", 2.0)
    assert req["boxes"] == [[10, 10, 200, 300], [300, 10, 500, 300]]
    assert req["prompt"] == "A person talks."


def test_top_level_extras_are_honoured_like_options(idle_api, examples):
    body = request_body(examples)
    body.update({"seed": 77, "mode": "fast", "text_cfg": 1.5})
    job_id = idle_api.post("/api/v1/generate", json=body).json()["job_id"]
    req = idle_api.get(f"/api/v1/jobs/{job_id}").json()["request"]
    assert (req["seed"], req["mode"], req["text_guidance"]) == (77, "fast", 1.5)


def test_multipart_upload_submits_a_two_voice_job(idle_api, examples):
    files = [("image", ("portrait.png", (examples / "multi3.png").read_bytes(), "image/png")),
             ("audio", ("a.wav", (examples / "1-man.WAV").read_bytes(), "audio/wav")),
             ("audio", ("b.wav", (examples / "1-woman.WAV").read_bytes(), "audio/wav"))]
    data = {"request": '{"prompt": "Two people talk.", "options": {"resolution": "64x64", "audio_type": "add"}}'}
    r = idle_api.post("/api/v1/generate", files=files, data=data)
    assert r.status_code == 200, r.text
    job_id = r.json()["job_id"]
    ctx = make_context()
    with JobStore(ctx.paths.database) as store:
        job = store.get(job_id)
    assert len(job.request["audio"]) == 2
    assert job.request["prompt"] == "Two people talk."
    # the queue copied the uploads into the job folder; the staging area is empty again
    staging = ctx.paths.data_dir / "api-staging"
    assert not staging.exists() or not any(staging.iterdir())


def test_file_url_and_http_url_inputs_are_accepted(idle_api, examples):
    import threading
    from functools import partial
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), partial(Quiet, directory=str(examples)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        body = request_body(examples)
        body["image_s3_url"] = (examples / "single1.png").as_uri()
        body["audio_s3_urls"] = [f"http://127.0.0.1:{httpd.server_address[1]}/1.wav"]
        r = idle_api.post("/api/v1/generate", json=body)
        assert r.status_code == 200, r.text
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(10)


def test_health_needs_no_key_and_reports_queue_and_worker(idle_api, examples):
    idle_api.post("/api/v1/generate", json=request_body(examples))
    with httpx.Client(trust_env=False) as anonymous:
        r = anonymous.get(f"{idle_api.url}/api/v1/health")
    assert r.status_code == 200
    body = r.json()
    assert body["queue_depth"] == 1
    assert body["worker"] == "none"
    assert body["status"] != "healthy" and "worker" in body["status"]
    assert body["version"] and body["timestamp"].endswith("Z")
    assert isinstance(body["gpus"], list)


def test_health_is_healthy_when_this_server_runs_jobs_with_the_test_engine(api):
    body = api.client.get("/api/v1/health").json()
    assert body["worker"] == "this server"
    assert body["status"] == "healthy"
