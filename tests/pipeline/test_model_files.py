"""The models folder: download from a hub on loopback (resume, corruption, .bin conversion),
`models check`, and clear errors for a missing or damaged file."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from multitalk_desktop.cli import main
from multitalk_desktop.engine.download import download_models
from multitalk_desktop.engine.manifest import manifest_files
from multitalk_desktop.engine.model_files import check_models, read_verified
from multitalk_desktop.errors import ModelFilesError
from tests.hub_server import serve_models_folder

SHARD = "Wan2.1-I2V-14B-480P-Diffusers/transformer/diffusion_pytorch_model-00001-of-00002.safetensors"
VAE = "Wan2.1-I2V-14B-480P-Diffusers/vae/diffusion_pytorch_model.safetensors"
WAV2VEC = "chinese-wav2vec2-base/model.safetensors"


@pytest.fixture
def hub(tiny_models, monkeypatch):
    """The tiny folder served in the hub's layout, each file under its manifest repo/revision."""
    with serve_models_folder(tiny_models, monkeypatch) as server:
        yield server


def test_download_gives_a_verified_ready_folder_and_resumes_a_dropped_connection(hub, tmp_path):
    hub.drop_after[SHARD.split("/", 1)[1]] = 1000
    dest = tmp_path / "models"
    report = download_models(dest, endpoint=hub.endpoint, token=False)
    assert report.ok, report.failed
    assert ("GET", f"/Wan-AI/Wan2.1-I2V-14B-480P-Diffusers/resolve/main/{SHARD.split('/', 1)[1]}",
            "bytes=1000-") in hub.requests
    check = check_models(dest, deep=True)
    assert check.ready and not check.unverified
    assert read_verified(dest)["files"][SHARD]["sha256"]
    assert not list(dest.rglob("*.part"))

    hub.requests.clear()
    again = download_models(dest, endpoint=hub.endpoint, token=False)
    assert again.ok and not again.downloaded
    assert not [r for r in hub.requests if r[0] == "GET"]


def test_a_corrupted_download_is_detected_and_not_installed(hub, tmp_path):
    hub.corrupt.add("vae/diffusion_pytorch_model.safetensors")
    dest = tmp_path / "models"
    report = download_models(dest, endpoint=hub.endpoint, token=False)
    failed = dict(report.failed)
    assert list(failed) == [VAE]
    assert "corrupted" in failed[VAE]
    assert not (dest / VAE).exists()
    assert check_models(dest).missing == [VAE]


def test_wav2vec_bin_is_converted_when_the_safetensors_revision_is_missing(hub, tiny_models, tmp_path):
    import torch
    from safetensors.torch import load_file

    original = load_file(str(tiny_models / WAV2VEC))
    del hub.files[("TencentGameMate/chinese-wav2vec2-base", "refs/pr/1", "model.safetensors")]
    bin_path = tmp_path / "pytorch_model.bin"
    torch.save(original, bin_path)
    hub.add("TencentGameMate/chinese-wav2vec2-base", "pytorch_model.bin", bin_path.read_bytes())
    dest = tmp_path / "models"
    report = download_models(dest, endpoint=hub.endpoint, token=False)
    assert report.ok, report.failed
    converted = load_file(str(dest / WAV2VEC))
    assert converted.keys() == original.keys()
    assert all(torch.equal(converted[k], original[k]) for k in original)
    assert not (dest / "chinese-wav2vec2-base" / "pytorch_model.bin").exists()
    assert check_models(dest, deep=True).ready


def copy_models(tiny_models: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(tiny_models, tmp_path / "models"))


def test_a_missing_model_file_is_named_with_how_to_get_it(tiny_models, tmp_path):
    from multitalk_desktop.engine.engine import MultiTalkEngine

    models = copy_models(tiny_models, tmp_path)
    (models / VAE).unlink()
    with pytest.raises(ModelFilesError) as err:
        MultiTalkEngine.load(models, device="cpu")
    assert f"{VAE}: is missing." in err.value.message
    assert "models download" in err.value.message


@pytest.mark.parametrize("damage", ["truncated", "garbage header"])
def test_a_damaged_safetensors_file_is_named(tiny_models, tmp_path, damage):
    from multitalk_desktop.engine.engine import MultiTalkEngine

    models = copy_models(tiny_models, tmp_path)
    path = models / SHARD
    data = path.read_bytes()
    path.write_bytes(data[:-100] if damage == "truncated" else b"\xff" * 64 + data[64:])
    with pytest.raises(ModelFilesError) as err:
        MultiTalkEngine.load(models, device="cpu")
    expected = "truncated" if damage == "truncated" else "no readable safetensors header"
    assert SHARD in err.value.message and expected in err.value.message


def test_models_check_compares_hashes_unless_quick(tiny_models, tmp_path, capsys):
    models = copy_models(tiny_models, tmp_path)
    assert main(["models", "check", str(models)]) == 0
    assert "is ready" in capsys.readouterr().out
    adapter = models / "MeiGen-MultiTalk" / "multitalk.safetensors"
    data = bytearray(adapter.read_bytes())
    data[-10] ^= 0x01  # one bit in the tensor data: same size, header intact
    adapter.write_bytes(bytes(data))
    assert main(["models", "check", "--quick", str(models)]) == 0
    assert main(["models", "check", str(models)]) == 1
    out = capsys.readouterr().out
    assert "MeiGen-MultiTalk/multitalk.safetensors: does not match the sha256" in out
    assert "not ready" in out


def test_models_check_names_every_missing_file_of_an_empty_folder(tmp_path, capsys):
    assert main(["models", "check", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    required = [mf.path for mf in manifest_files() if mf.required]
    assert all(f"{path}: is missing." in out for path in required)
    assert "huggingface.co/MeiGen-AI/MeiGen-MultiTalk" in out


def test_make_tiny_writes_a_folder_that_checks_ready(tmp_path, capsys):
    assert main(["models", "make-tiny", str(tmp_path / "m")]) == 0
    assert check_models(tmp_path / "m", deep=True).ready
