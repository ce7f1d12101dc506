"""The models page's Download button against a Hugging Face hub stand-in on loopback
(`tests/hub_server.py`, the one `models download` is tested with): the files arrive in the models
folder, the page shows progress, the download runs in the task pool while the GUI thread keeps
ticking, and the page ends by reporting the folder ready, or by naming exactly what is missing."""

from __future__ import annotations

import threading
import time

import pytest
from PySide6.QtCore import QTimer

from multitalk_desktop.gui.models_page import ModelsPage
from tests.hub_server import serve_models_folder

MULTITALK = "MeiGen-MultiTalk/multitalk.safetensors"
MAX_GAP_MS = 200


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory):
    pytest.importorskip("torch", reason="make_tiny writes its weights with torch, absent here")
    from multitalk_desktop.engine.make_tiny import make_tiny_models

    return make_tiny_models(tmp_path_factory.mktemp("tiny") / "models")


@pytest.fixture
def hub(tiny_models, monkeypatch):
    """Every file of the tiny folder under its manifest repo/revision; HF_ENDPOINT points at it."""
    with serve_models_folder(tiny_models, monkeypatch) as server:
        monkeypatch.setenv("HF_ENDPOINT", server.endpoint)
        yield server


class Probe:
    """A 5 ms timer on the GUI thread (its longest gap is the longest stall), the page's progress
    as shown after each update, and the thread the download ran in."""

    def __init__(self, page: ModelsPage, monkeypatch) -> None:
        import multitalk_desktop.engine.download as download

        self.gaps: list[float] = []
        self.shown: list[tuple[bool, int, str]] = []  # (bar visible, bar value, text)
        self.download_threads: list[int] = []
        self._last = time.perf_counter()
        self.timer = QTimer()
        self.timer.setInterval(5)
        self.timer.timeout.connect(self._tick)
        # connected after the page's own slot, so this sees what the page just showed
        page._relay.progress.connect(lambda _p: self.shown.append(
            (page.progress.isVisible(), page.progress.value(), page.progress_text.text())))
        real = download.download_models

        def recorded(*args, **kwargs):
            self.download_threads.append(threading.get_ident())
            return real(*args, **kwargs)

        monkeypatch.setattr(download, "download_models", recorded)

    def _tick(self) -> None:
        now = time.perf_counter()
        self.gaps.append(now - self._last)
        self._last = now

    def start(self) -> None:
        self._last = time.perf_counter()
        self.timer.start()

    def stop(self) -> float:
        self.timer.stop()
        return max(self.gaps) * 1000


def download_with_page(qtbot, page: ModelsPage, probe: Probe) -> float:
    qtbot.waitUntil(lambda: "not ready" in page.status.text(), timeout=15000)  # the first check
    probe.start()
    page.download_button.click()
    assert not page.download_button.isEnabled() and page.stop_button.isVisibleTo(page)
    qtbot.waitUntil(lambda: page.download_button.isEnabled(), timeout=20000)
    worst_ms = probe.stop()
    assert probe.download_threads and threading.get_ident() not in probe.download_threads
    assert not page.stop_button.isVisibleTo(page)
    return worst_ms


def test_download_fills_the_models_folder_from_the_hub_without_freezing_the_window(
        qtbot, ctx, pool, hub, tiny_models, monkeypatch):
    page = ModelsPage(ctx, pool)
    qtbot.addWidget(page)
    page.show()
    probe = Probe(page, monkeypatch)
    worst_ms = download_with_page(qtbot, page, probe)

    assert worst_ms < MAX_GAP_MS, f"the GUI thread stalled {worst_ms:.0f} ms during the download"
    assert len(probe.gaps) > 10  # the timer kept firing while the files came in
    # progress: the bar was shown, went through "downloading" and reached each file's end
    assert probe.shown and all(visible for visible, _, _ in probe.shown)
    texts = [text for _, _, text in probe.shown]
    assert any(" · downloading · " in t for t in texts)
    assert any(t.startswith("File 1/") for t in texts)
    assert any(t.endswith(f"{MULTITALK} · downloaded and verified") for t in texts)
    assert max(value for _, value, _ in probe.shown) == 1000
    assert page.progress_text.text() == "Download finished."

    qtbot.waitUntil(lambda: "is ready" in page.status.text(), timeout=15000)
    assert "✔" in page.status.text()
    assert page.details.toPlainText() == "Every file is present."
    assert (ctx.models_dir / MULTITALK).read_bytes() == (tiny_models / MULTITALK).read_bytes()
    assert not list(ctx.models_dir.rglob("*.part"))
    gets = {path for method, path, _ in hub.requests if method == "GET"}
    assert any(p.endswith("/multitalk.safetensors") for p in gets)


def test_files_the_hub_lacks_are_named_exactly_after_the_download(qtbot, ctx, pool, hub, monkeypatch):
    del hub.files[("MeiGen-AI/MeiGen-MultiTalk", "main", "multitalk.safetensors")]
    page = ModelsPage(ctx, pool)
    qtbot.addWidget(page)
    page.show()
    probe = Probe(page, monkeypatch)
    worst_ms = download_with_page(qtbot, page, probe)

    assert worst_ms < MAX_GAP_MS, f"the GUI thread stalled {worst_ms:.0f} ms during the download"
    assert page.progress_text.text() == ("Some files failed:\n" + MULTITALK +
                                         ": the hub has no such file (check the repository and revision).")
    qtbot.waitUntil(lambda: "✖" in page.status.text() and "not ready" in page.status.text(), timeout=15000)
    problems = page.details.toPlainText().splitlines()
    assert len(problems) == 1 and problems[0].startswith(f"{MULTITALK}: is missing.")
    assert not (ctx.models_dir / MULTITALK).exists()
    assert (ctx.models_dir / "chinese-wav2vec2-base" / "model.safetensors").is_file()
