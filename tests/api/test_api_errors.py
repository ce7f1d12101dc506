"""401, 404, 409, 413, 422 and 429 answers, path traversal, and no stack traces in any error."""

from __future__ import annotations

import httpx
import pytest

from multitalk_desktop.api.inputs import InputLimits, InputRefused, InputResolver, Staging
from multitalk_desktop.api.ratelimit import RateLimit
from tests.api.conftest import make_context, request_body


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic abc"},
                                     {"Authorization": "Bearer"}])
def test_missing_or_wrong_key_is_401_on_every_keyed_endpoint(idle_api, headers):
    with httpx.Client(base_url=idle_api.url, trust_env=False) as c:
        for method, path in [("GET", "/api/v1/jobs"), ("GET", "/api/v1/jobs/abc"),
                             ("DELETE", "/api/v1/jobs/abc"), ("GET", "/api/v1/jobs/abc/download"),
                             ("POST", "/api/v1/generate"), ("POST", "/api/v1/webhook-test")]:
            r = c.request(method, path, headers=headers, json={})
            assert r.status_code == 401, (method, path, r.text)
            assert r.headers["www-authenticate"] == "Bearer"


def test_a_key_differing_in_its_last_character_is_refused(idle_api):
    near = idle_api.key[:-1] + ("A" if idle_api.key[-1] != "A" else "B")
    r = idle_api.client.get("/api/v1/jobs", headers={"Authorization": f"Bearer {near}"})
    assert r.status_code == 401


def test_unknown_job_is_404(idle_api):
    for path in ("/api/v1/jobs/0123456789abcdef0123456789abcdef",
                 "/api/v1/jobs/0123456789abcdef0123456789abcdef/download"):
        assert idle_api.get(path).status_code == 404
    assert idle_api.delete("/api/v1/jobs/nope").status_code == 404


@pytest.mark.parametrize("job_id", ["..%2F..%2Fjobs.sqlite3", "%2e%2e", "..%5C..%5Cconfig.toml",
                                    "a%00b", "x" * 300, "%2Fetc%2Fpasswd"])
def test_job_ids_cannot_traverse_paths(idle_api, job_id):
    for suffix in ("", "/download"):
        r = idle_api.get(f"/api/v1/jobs/{job_id}{suffix}")
        assert r.status_code == 404, r.text
        assert "sqlite" not in r.text.lower() or "no job" in r.text.lower()


def test_job_id_prefixes_do_not_match_a_job(idle_api, examples):
    job_id = idle_api.post("/api/v1/generate", json=request_body(examples)).json()["job_id"]
    assert idle_api.get(f"/api/v1/jobs/{job_id[:8]}").status_code == 404


def test_uploaded_file_names_cannot_place_files_outside_the_staging_area(idle_api, examples, tmp_path):
    target = tmp_path / "evil.png"
    files = [("image", (f"../../../../../../{target}", (examples / "single1.png").read_bytes(), "image/png")),
             ("audio", ("..\\..\\voice.wav", (examples / "1.wav").read_bytes(), "audio/wav"))]
    r = idle_api.post("/api/v1/generate", files=files, data={"request": '{"options": {"resolution": "64x64"}}'})
    assert r.status_code == 200, r.text
    assert not target.exists()
    data_dir = make_context().paths.data_dir
    assert not (data_dir.parent / "voice.wav").exists()


def test_validation_errors_list_every_field_with_api_names(idle_api, examples):
    body = request_body(examples, sample_steps=500, resolution="100x7", audio_cfg=99)
    body["image_s3_url"] = str(examples / "missing.png")
    r = idle_api.post("/api/v1/generate", json=body)
    assert r.status_code == 422
    fields = {e["field"] for e in r.json()["errors"]}
    assert {"image_s3_url", "options.sample_steps", "options.resolution", "options.audio_cfg"} <= fields


def test_unknown_fields_are_rejected_not_ignored(idle_api, examples):
    body = request_body(examples, output_bucket="mine")
    body["priority"] = "high"
    r = idle_api.post("/api/v1/generate", json=body)
    assert r.status_code == 422
    fields = {e["field"] for e in r.json()["errors"]}
    assert fields == {"options.output_bucket", "priority"}


def test_more_than_two_voices_is_422(idle_api, examples):
    body = request_body(examples)
    body["audio_s3_urls"] = [str(examples / "1.wav")] * 3
    r = idle_api.post("/api/v1/generate", json=body)
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "audio_s3_urls"


def test_conflicting_top_level_and_options_values_are_422(idle_api, examples):
    body = request_body(examples, seed=1)
    body["seed"] = 2
    r = idle_api.post("/api/v1/generate", json=body)
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "seed"


def test_malformed_json_is_422_without_a_stack_trace(idle_api):
    r = idle_api.post("/api/v1/generate", content=b"{not json", headers={"Content-Type": "application/json"})
    assert r.status_code == 422
    assert "Traceback" not in r.text and "File \"" not in r.text


@pytest.mark.parametrize("url", ["ftp://example.com/hook", "file:///etc/passwd", "http://127.0.0.1:9/hook",
                                 "http://10.0.0.1/hook", "http://[::1]/hook", "not a url"])
def test_webhook_urls_must_be_http_and_public_unless_private_is_allowed(api_factory, examples, url):
    api = api_factory.start(make_context(allow_private_webhooks=False), worker=False)
    body = request_body(examples)
    body["webhook_url"] = url
    r = api.post("/api/v1/generate", json=body)
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "webhook_url"
    assert api.post("/api/v1/webhook-test", json={"url": url}).status_code == 422


def test_s3_inputs_without_boto3_or_credentials_get_a_clear_422(idle_api, examples):
    body = request_body(examples)
    body["image_s3_url"] = "s3://bucket/portrait.png"
    r = idle_api.post("/api/v1/generate", json=body)
    assert r.status_code == 422
    problem = r.json()["errors"][0]
    assert problem["field"] == "image_s3_url"
    assert "boto3" in problem["message"] or "credentials" in problem["message"]


def test_too_large_upload_is_413(api_factory, examples):
    api = api_factory.start(worker=False, limits=InputLimits(max_upload_bytes=1024 * 1024))
    files = [("image", ("p.png", (examples / "single1.png").read_bytes(), "image/png"))]
    r = api.post("/api/v1/generate", files=files, data={"request": "{}"})
    assert r.status_code == 413


def test_too_large_chunked_upload_is_413(api_factory, examples):
    api = api_factory.start(worker=False, limits=InputLimits(max_upload_bytes=1024 * 1024))
    payload = (examples / "single1.png").read_bytes()
    boundary = "b0undary"
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"p.png\"\r\n"
            "Content-Type: image/png\r\n\r\n").encode()

    def chunks():  # no Content-Length: the server must count as the bytes arrive
        yield head
        for i in range(0, len(payload), 65536):
            yield payload[i:i + 65536]
        yield f"\r\n--{boundary}--\r\n".encode()

    r = api.post("/api/v1/generate", content=chunks(),
                 headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    assert r.status_code == 413


def test_too_large_json_body_is_413(idle_api):
    r = idle_api.post("/api/v1/generate", content=b"{" + b" " * (2 * 1024 * 1024) + b"}",
                      headers={"Content-Type": "application/json"})
    assert r.status_code == 413


def test_too_large_http_download_is_422_naming_the_field(api_factory, examples):
    import threading
    from functools import partial
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    api = api_factory.start(worker=False, limits=InputLimits(max_download_bytes=100_000))
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), partial(Quiet, directory=str(examples)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        body = request_body(examples)
        body["image_s3_url"] = f"http://127.0.0.1:{httpd.server_address[1]}/single1.png"
        r = api.post("/api/v1/generate", json=body)
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(10)
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "image_s3_url"
    assert "limit" in r.json()["errors"][0]["message"]


def test_rate_limit_answers_429_with_retry_after(api_factory, examples):
    api = api_factory.start(worker=False, rate_limit=RateLimit(per_minute=6, burst=2))
    codes = [api.post("/api/v1/generate", json=request_body(examples)).status_code for _ in range(3)]
    assert codes[:2] == [200, 200]
    assert codes[2] == 429
    r = api.post("/api/v1/generate", json=request_body(examples))
    assert r.status_code == 429
    assert 1 <= int(r.headers["retry-after"]) <= 10
    assert api.get("/api/v1/jobs").status_code == 200  # only submissions are limited


def test_local_files_beyond_loopback_only_come_from_allowed_folders(examples, tmp_path):
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    inside = allowed / "portrait.png"
    inside.write_bytes((examples / "single1.png").read_bytes())
    (allowed / "link.png").symlink_to(examples / "single1.png")
    ctx = make_context(api_allowed_dirs=[str(allowed)])
    resolver = InputResolver(ctx, loopback_only=False, limits=InputLimits())
    staging = Staging(ctx)
    assert resolver.resolve(str(inside), "image_s3_url", staging, "image") == inside.resolve()
    assert resolver.resolve(inside.as_uri(), "image_s3_url", staging, "image") == inside.resolve()
    for ref in (str(examples / "single1.png"), f"{allowed}/../allowed/../{inside.name}",
                str(allowed / "link.png"), "relative/path.png"):
        with pytest.raises(InputRefused):
            resolver.resolve(ref, "image_s3_url", staging, "image")
    # on loopback any readable file will do
    loopback = InputResolver(ctx, loopback_only=True, limits=InputLimits())
    assert loopback.resolve(str(examples / "single1.png"), "image_s3_url", staging, "image").is_file()
