"""The settings dialog: values persisted to config.toml and restored, the HTTP API toggle running a
real server, the key's copy button, and engine settings applying to the next job."""

from __future__ import annotations

import socket

import httpx
import tomllib
from PySide6.QtWidgets import QApplication

from multitalk_desktop.config import Settings, load_context
from multitalk_desktop.gui.settings_dialog import COMPILE_LABEL, ENGINE_NOTE, SettingsDialog
from tests.gui.test_window import fill_form, submit


def free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def open_dialog(qtbot, ctx, pool, page="general") -> SettingsDialog:
    dialog = SettingsDialog(ctx, pool, page=page)
    qtbot.addWidget(dialog)
    dialog.show()
    return dialog


def choose(combo, value) -> None:
    combo.setCurrentIndex(combo.findData(value))
    assert combo.currentData() == value


def test_settings_are_saved_to_config_toml_and_restored_at_the_next_start(qtbot, ctx, pool, tmp_path):
    dialog = open_dialog(qtbot, ctx, pool)
    dialog.models_edit.setText(str(tmp_path / "my models"))
    dialog.outputs_edit.setText(str(tmp_path / "videos"))
    choose(dialog.profile_combo, "fp8")
    choose(dialog.device_combo, "cpu")
    with qtbot.waitSignal(dialog.settings_saved) as saved:
        dialog.save_button.click()
    assert saved.args == [True]  # the models folder, profile and device changed: the engine reloads
    written = tomllib.loads(ctx.paths.config_file.read_text("utf-8"))
    assert written["models_dir"] == str(tmp_path / "my models")
    assert written["outputs_dir"] == str(tmp_path / "videos")
    assert (written["profile"], written["device"]) == ("fp8", "cpu")

    restarted = load_context()  # what the next start reads
    assert restarted.models_dir == tmp_path / "my models"
    assert restarted.outputs_dir == tmp_path / "videos"
    again = open_dialog(qtbot, restarted, pool)
    assert again.models_edit.text() == str(tmp_path / "my models")
    assert again.outputs_edit.text() == str(tmp_path / "videos")
    assert (again.profile_combo.currentData(), again.device_combo.currentData()) == ("fp8", "cpu")
    assert again.engine_note.text() == ENGINE_NOTE and "next job" in ENGINE_NOTE
    with qtbot.waitSignal(again.settings_saved) as saved_unchanged:
        again.save_button.click()
    assert saved_unchanged.args == [False]


def test_the_compile_checkbox_is_saved_and_reloads_the_engine(qtbot, ctx, pool):
    dialog = open_dialog(qtbot, ctx, pool)
    assert not dialog.compile_check.isChecked()  # off unless asked for
    assert dialog.compile_check.text() == COMPILE_LABEL and "NVIDIA GPU" in COMPILE_LABEL
    assert "first job" in dialog.compile_check.toolTip()  # says what it costs
    dialog.compile_check.setChecked(True)
    with qtbot.waitSignal(dialog.settings_saved) as saved:
        dialog.save_button.click()
    assert saved.args == [True]  # only compiled mode changed, and the engine must reload for it
    assert tomllib.loads(ctx.paths.config_file.read_text("utf-8"))["compile_blocks"] is True

    restarted = load_context()
    assert restarted.settings.compile_blocks is True
    again = open_dialog(qtbot, restarted, pool)
    assert again.compile_check.isChecked()


def test_a_config_file_from_before_compiled_mode_still_loads_with_it_off(ctx):
    ctx.paths.config_file.write_text('profile = "fp8"\ndevice = "cpu"\n', encoding="utf-8")
    old = Settings.load(ctx.paths)
    assert (old.profile, old.device, old.compile_blocks) == ("fp8", "cpu", False)
    old.compile_blocks = True
    old.save(ctx.paths)
    assert Settings.load(ctx.paths) == old


def _health_answers(url: str) -> bool:
    try:
        return httpx.get(url + "/api/v1/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def test_the_api_toggle_runs_a_real_server_and_the_copied_key_opens_it(qtbot, make_window):
    window = make_window(start_worker=False)
    port = free_loopback_port()
    window.open_settings("api")
    dialog = window._settings_dialog
    assert dialog.tabs.currentIndex() == dialog.tabs.indexOf(dialog.api_check.parentWidget())
    dialog.api_check.setChecked(True)
    dialog.port_spin.setValue(port)
    dialog.save_button.click()
    url = f"http://127.0.0.1:{port}"
    qtbot.waitUntil(lambda: _health_answers(url), timeout=30000)
    server = window.api_server
    assert server is not None and server.port == port

    window.open_settings("api")
    dialog = window._settings_dialog
    assert f"Listening on {url}" in dialog.api_status.text()
    key = dialog.key_edit.text()
    assert key.startswith("mtd_") and dialog.key_edit.echoMode() == dialog.key_edit.EchoMode.Password
    dialog.show_key_button.click()
    assert dialog.key_edit.echoMode() == dialog.key_edit.EchoMode.Normal
    dialog.show_key_button.click()
    assert dialog.key_edit.echoMode() == dialog.key_edit.EchoMode.Password
    QApplication.clipboard().clear()
    dialog.copy_key_button.click()
    copied = QApplication.clipboard().text()
    assert copied == key
    listed = httpx.get(url + "/api/v1/jobs", headers={"Authorization": f"Bearer {copied}"}, timeout=5)
    assert listed.status_code == 200
    refused = httpx.get(url + "/api/v1/jobs", headers={"Authorization": "Bearer wrong"}, timeout=5)
    assert refused.status_code == 401

    dialog.api_check.setChecked(False)
    dialog.save_button.click()
    qtbot.waitUntil(lambda: not server.running, timeout=30000)
    assert window.api_server is None
    assert not _health_answers(url)


def test_engine_settings_apply_to_the_next_job_never_the_running_one(qtbot, make_window, examples):
    window = make_window(step_seconds=0.03)
    events: list[tuple[str, str]] = []
    window.worker.engine_state.connect(lambda state, message: events.append((state, message)))
    window.worker.job_finished.connect(lambda job: events.append(("finished", job.id)))
    fill_form(qtbot, window, examples, voices=("1-man.WAV",), steps=6)
    first = submit(qtbot, window)
    qtbot.waitUntil(lambda: window.worker.running_job_id == first.id, timeout=20000)

    window.open_settings("general")
    dialog = window._settings_dialog
    choose(dialog.profile_combo, "low")
    choose(dialog.device_combo, "cpu")
    dialog.compile_check.setChecked(True)
    dialog.save_button.click()
    assert "next job" in window.statusBar().currentMessage()
    qtbot.waitUntil(lambda: ("finished", first.id) in events, timeout=60000)
    assert window.queue.get(first.id).state == "completed"  # the running job was left alone

    second = submit(qtbot, window)
    qtbot.waitUntil(lambda: ("finished", second.id) in events, timeout=60000)
    assert window.queue.get(second.id).state == "completed"
    ready = [message for state, message in events if state == "ready"]
    assert len(ready) == 2, events  # one engine per settings, not one per job
    assert "profile auto" in ready[0] and "device auto" in ready[0] and "compile off" in ready[0]
    assert "profile low" in ready[1] and "device cpu" in ready[1] and "compile on" in ready[1]
    # the old engine was dropped after the first job finished, not while it ran
    dropped = next(i for i, (state, _m) in enumerate(events) if state == "stopped")
    assert events.index(("finished", first.id)) < dropped
