"""The models page (first start without models, the check, linking folders already on disk) and
the system page (the doctor data)."""

from __future__ import annotations

import os

import pytest
from PySide6.QtWidgets import QFileDialog

from multitalk_desktop import __version__
from multitalk_desktop.gui.engine_choice import EngineChoice
from multitalk_desktop.gui.main_window import MainWindow
from multitalk_desktop.gui.models_page import ModelsPage, expected_top_folders
from multitalk_desktop.gui.settings_dialog import PAGES, SettingsDialog


@pytest.fixture
def real_engine_window(qtbot, ctx):
    """The window as a user's first start makes it (real engine, no model files); the worker is
    not started, so nothing tries to load the engine."""
    window = MainWindow(ctx, EngineChoice("real"), start_worker=False, poll_ms=100)
    qtbot.addWidget(window)
    yield window
    window._closing = True
    window.shutdown()


def test_the_first_start_without_models_opens_the_models_page_listing_the_folders(qtbot, real_engine_window, ctx):
    assert real_engine_window.open_models_page_if_missing()
    dialog = real_engine_window._settings_dialog
    qtbot.waitUntil(dialog.isVisible, timeout=5000)
    assert dialog.tabs.currentIndex() == PAGES.index("models")
    page = dialog.models_page
    where = page.where.text()
    assert str(ctx.models_dir) in where
    assert expected_top_folders() and all(f"{name}/" in where for name in expected_top_folders())
    qtbot.waitUntil(lambda: "not ready" in page.status.text(), timeout=15000)
    assert "is missing" in page.details.toPlainText()


def test_the_test_engine_needs_no_models_page(qtbot, make_window):
    assert not make_window(start_worker=False).open_models_page_if_missing()


def test_check_again_reports_a_complete_tiny_models_folder_ready(qtbot, ctx, pool):
    pytest.importorskip("torch", reason="make_tiny writes its weights with torch, absent here")
    make_tiny = pytest.importorskip("multitalk_desktop.engine.make_tiny")
    if not hasattr(make_tiny, "make_tiny_models"):
        pytest.skip("engine.make_tiny has no make_tiny_models in this checkout")
    page = ModelsPage(ctx, pool)
    qtbot.addWidget(page)
    qtbot.waitUntil(lambda: "not ready" in page.status.text(), timeout=15000)
    make_tiny.make_tiny_models(ctx.models_dir)
    page.verify_button.click()
    qtbot.waitUntil(lambda: "is ready" in page.status.text(), timeout=15000)
    assert "✔" in page.status.text()
    assert page.details.toPlainText() == "Every file is present."


def test_use_existing_folders_links_them_into_our_layout_instead_of_copying(qtbot, ctx, pool, tmp_path, monkeypatch):
    cache = tmp_path / "hf-cache"
    names = expected_top_folders()
    for name in names[:2]:
        (cache / name).mkdir(parents=True)
        (cache / name / "weights.bin").write_bytes(b"\0" * 1024)
    (cache / "unrelated").mkdir()
    page = ModelsPage(ctx, pool)
    qtbot.addWidget(page)
    asked = []

    def pick_folder(parent, caption, *args, **kwargs):
        asked.append(caption)
        return str(cache)

    # The native folder picker is modal; the user's answer is given here.
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", staticmethod(pick_folder))
    page.link_button.click()
    assert asked
    for name in names[:2]:
        linked = ctx.models_dir / name
        assert linked.is_symlink() and linked.resolve() == (cache / name).resolve()
        assert (linked / "weights.bin").stat().st_ino == (cache / name / "weights.bin").stat().st_ino
    assert not (ctx.models_dir / "unrelated").exists()
    assert sum(1 for _ in os.scandir(ctx.models_dir)) == 2  # nothing copied beside the links
    assert page.progress_text.text() == "Linked: " + ", ".join(names[:2])
    # an existing entry is left alone the second time
    page.link_button.click()
    assert page.progress_text.text() == "No expected model folder was found there."


def test_the_system_page_shows_the_doctor_data(qtbot, ctx, pool):
    dialog = SettingsDialog(ctx, pool, page="system")
    qtbot.addWidget(dialog)
    dialog.show()
    page = dialog.system_page
    assert page is not None and dialog.tabs.currentWidget() is page
    qtbot.waitUntil(lambda: page.facts is not None, timeout=60000)
    text = page.report.text()
    for label in ("Version", "Python", "Data folder", "Free disk", "GPUs"):
        assert f"<b>{label}</b>" in text
    facts = page.facts
    assert facts["version"] == __version__ and __version__ in text
    assert str(facts["python"]) in text
    assert str(ctx.paths.data_dir) in text and str(facts["data_dir"]) in text
    assert f"{facts['free_disk_gb']} GB" in text and float(facts["free_disk_gb"]) > 0
