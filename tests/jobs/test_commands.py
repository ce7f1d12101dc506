"""The command line of the jobs layer: JSON shapes and exit codes of CLI.md."""

from __future__ import annotations

import json

import pytest

from multitalk_desktop.cli import main

JOB_KEYS = {"id", "state", "created_at", "updated_at", "request", "progress", "output", "error", "attempts"}
PROGRESS_KEYS = {"phase", "clip", "clips", "step", "steps", "percent", "eta_seconds"}
DOCTOR_KEYS = {"version", "python", "torch", "cuda_available", "gpus", "driver", "data_dir", "free_disk_gb",
               "ffmpeg", "models"}


def cli(capsys, *argv) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def submit_args(media, *extra) -> list[str]:
    return ["submit", "--image", str(media / "face.png"), "--audio", str(media / "voice4s.wav"),
            "--steps", "2", "--seed", "5", "--prompt", "Two friends chat", *extra]


def test_submit_prints_the_id_and_json_has_the_cli_shape(capsys, media):
    code, out, _ = cli(capsys, *submit_args(media))
    assert code == 0 and len(out.strip()) == 32
    code, out, _ = cli(capsys, *submit_args(media, "--json"))
    job = json.loads(out)
    assert code == 0 and JOB_KEYS <= set(job) and set(job["progress"]) == PROGRESS_KEYS
    assert job["state"] == "queued" and job["attempts"] == 1 and job["output"] is None
    assert job["request"]["seed"] == 5 and job["request"]["steps"] == 2
    assert job["created_at"].endswith("Z")


def test_invalid_submit_prints_every_problem_with_its_field_and_exits_2(capsys, media, tmp_path):
    code, out, err = cli(capsys, "submit", "--image", str(tmp_path / "none.png"), "--audio",
                         str(media / "voice4s.wav"), "--text-guidance", "nan", "--steps", "0")
    lines = err.strip().splitlines()
    assert code == 2 and out == ""
    assert {line.split(":")[0] for line in lines} == {"image", "text_guidance", "steps"}


def test_bad_box_flag_is_a_usage_error(capsys, media):
    with pytest.raises(SystemExit) as exit_:
        main(submit_args(media, "--box", "1,2,3"))
    assert exit_.value.code == 2


def test_submit_warnings_go_to_stderr(capsys, media):
    code, out, err = cli(capsys, "submit", "--image", str(media / "face.png"), "--audio", str(media / "voice1s.wav"))
    assert code == 0 and "warning: audio:" in err and "padded" in err


def test_list_show_and_queue_actions(capsys, media):
    ids = [cli(capsys, *submit_args(media))[1].strip() for _ in range(3)]
    code, out, _ = cli(capsys, "jobs", "list", "--json")
    listed = json.loads(out)
    assert code == 0 and [j["id"] for j in listed] == ids[::-1]
    assert all(JOB_KEYS <= set(j) for j in listed)
    assert json.loads(cli(capsys, "jobs", "list", "--json", "--limit", "1", "--offset", "1")[1])[0]["id"] == ids[1]
    assert json.loads(cli(capsys, "jobs", "list", "--json", "--search", "nothing-like-this")[1]) == []

    code, out, _ = cli(capsys, "jobs", "show", ids[0][:8], "--json")
    shown = json.loads(out)
    assert code == 0 and shown["id"] == ids[0] and shown["events"][0]["kind"] == "submitted"

    code, out, _ = cli(capsys, "jobs", "move", ids[2], "--to", "1", "--json")
    assert code == 0 and [j["id"] for j in json.loads(out)] == [ids[2], ids[0], ids[1]]

    assert cli(capsys, "jobs", "cancel", ids[0])[0] == 0
    assert json.loads(cli(capsys, "jobs", "list", "--state", "cancelled", "--json")[1])[0]["id"] == ids[0]
    code, _, err = cli(capsys, "jobs", "cancel", ids[0])
    assert code == 1 and "already cancelled" in err
    code, out, _ = cli(capsys, "jobs", "retry", ids[0], "--json")
    assert code == 0 and json.loads(out)["attempts"] == 2
    assert cli(capsys, "jobs", "resume", ids[1])[0] == 1  # queued, not interrupted
    assert cli(capsys, "jobs", "show", "ffffffffffff")[0] == 2

    code, out, _ = cli(capsys, "jobs", "list")
    assert code == 0 and ids[0][:8] in out


def test_worker_once_with_the_test_engine_runs_the_queue(capsys, media):
    job_id = cli(capsys, *submit_args(media))[1].strip()
    code, _, err = cli(capsys, "worker", "--once", "--test-engine")
    assert code == 0 and "TEST engine" in err
    shown = json.loads(cli(capsys, "jobs", "show", job_id, "--json")[1])
    assert shown["state"] == "completed" and shown["produced_by"] == "test-engine"
    code, out, _ = cli(capsys, "jobs", "show", job_id)
    assert "test-engine" in out and "not a real video" in out


def test_worker_that_cannot_load_the_real_engine_refuses_and_keeps_the_job(capsys, media, tmp_path):
    # Either this build has no engine, or its models folder is empty: both must leave jobs alone.
    job_id = cli(capsys, *submit_args(media))[1].strip()
    code, _, err = cli(capsys, "worker", "--once", "--models", str(tmp_path / "no-models"), "--device", "cpu")
    assert code == 1 and err.strip()
    assert json.loads(cli(capsys, "jobs", "show", job_id, "--json")[1])["state"] == "queued"


def test_doctor_json_has_every_key_of_the_contract(capsys, isolated_home):
    code, out, _ = cli(capsys, "doctor", "--json")
    report = json.loads(out)
    assert set(report) == DOCTOR_KEYS
    assert set(report["models"]) == {"path", "ready", "missing"}
    assert report["data_dir"] == str(isolated_home)
    assert report["ffmpeg"] and report["free_disk_gb"] > 0
    assert isinstance(report["cuda_available"], bool) and isinstance(report["gpus"], list)
    for gpu in report["gpus"]:
        assert set(gpu) == {"name", "vram_total_gb", "vram_free_gb"}
    assert report["models"]["ready"] is False and report["models"]["missing"]  # empty models folder
    assert code == (0 if report["cuda_available"] and report["models"]["ready"] else 1)
