"""Settings: folders, VRAM profile, device, compiled mode, notifications, the local HTTP API
(on/off, port, key with a copy button), the models page and the system page. Saved with
config.Settings."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Signal
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from multitalk_desktop.config import DEVICES, PROFILES, AppContext
from multitalk_desktop.gui.background import TaskPool
from multitalk_desktop.gui.models_page import ModelsPage
from multitalk_desktop.gui.palette import MUTED_TEXT
from multitalk_desktop.gui.system_page import SystemPage

PAGES = ("general", "models", "api", "system")
PROFILE_WORDS = {
    "auto": "Automatic (chosen from your GPU's memory)",
    "full": "Full: everything on the GPU (about 40 GB VRAM)",
    "fp8": "FP8: weights in 8 bits (about 24 GB)",
    "balanced": "Balanced: parts offloaded to RAM (about 16 GB)",
    "low": "Low: most offloaded (8-12 GB, slowest)",
}


def api_status_text(url: str | None) -> str:
    if url:
        return (f"Listening on {url}. Programs on this computer queue jobs at {url}/api/v1 with "
                f"the key above (header Authorization: Bearer KEY); the reference is at {url}/api/v1/docs.")
    return ("Off. When on, programs on this computer can queue jobs here with the key above; the "
            "window runs them.")


def _folder_row(edit: QLineEdit, parent: QWidget) -> QWidget:
    button = QPushButton("Choose…")

    def choose() -> None:
        path = QFileDialog.getExistingDirectory(parent, "Choose a folder", edit.text() or str(Path.home()))
        if path:
            edit.setText(path)

    button.clicked.connect(choose)
    box = QWidget()
    row = QHBoxLayout(box)
    row.setContentsMargins(0, 0, 0, 0)
    row.addWidget(edit, 1)
    row.addWidget(button)
    return box


ENGINE_NOTE = ("The models folder, VRAM profile, device and compiled mode apply to the next job: the "
               "engine reloads between jobs with the new settings. A running job finishes with the "
               "ones it started with.")
COMPILE_LABEL = "Compile the model for speed (first job starts slower; needs an NVIDIA GPU)"
COMPILE_TIP = ("Prepares the model's repeating building block as code made for your NVIDIA graphics "
               "card. The first job after the engine loads spends extra time on this, so that later "
               "jobs can run faster. Without an NVIDIA GPU, or if your computer cannot compile, "
               "videos are made as usual and the job's notes say why.")


class SettingsDialog(QDialog):
    # True when an engine setting (models folder, profile, device, compiled mode) changed
    settings_saved = Signal(bool)

    def __init__(self, ctx: AppContext, pool: TaskPool, parent: QWidget | None = None, page: str = "general",
                 api_url: str | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Settings")
        self.resize(680, 520)
        self.ctx = ctx
        s = ctx.settings
        self.models_edit = QLineEdit(s.models_dir)
        self.models_edit.setPlaceholderText(str(ctx.paths.models_dir))
        self.outputs_edit = QLineEdit(s.outputs_dir)
        self.outputs_edit.setPlaceholderText(str(ctx.paths.outputs_dir))
        self.profile_combo = QComboBox()
        for p in PROFILES:
            self.profile_combo.addItem(PROFILE_WORDS.get(p, p), p)
        self.profile_combo.setCurrentIndex(max(0, self.profile_combo.findData(s.profile)))
        self.device_combo = QComboBox()
        for d in DEVICES:
            self.device_combo.addItem(d, d)
        self.device_combo.setCurrentIndex(max(0, self.device_combo.findData(s.device)))
        self.compile_check = QCheckBox(COMPILE_LABEL)
        self.compile_check.setToolTip(COMPILE_TIP)
        self.compile_check.setChecked(s.compile_blocks)
        self.notify_check = QCheckBox("Notify me when a job finishes or fails")
        self.notify_check.setChecked(s.notify_when_done)
        general = QWidget()
        general_col = QVBoxLayout(general)
        form = QFormLayout()
        general_col.addLayout(form)
        form.addRow("Models folder", _folder_row(self.models_edit, self))
        form.addRow("Outputs folder", _folder_row(self.outputs_edit, self))
        form.addRow("VRAM profile", self.profile_combo)
        form.addRow("Device", self.device_combo)
        form.addRow("", self.compile_check)  # with the engine settings: changing it reloads the engine
        form.addRow("", self.notify_check)
        self.engine_note = QLabel(ENGINE_NOTE)
        self.engine_note.setWordWrap(True)
        self.engine_note.setStyleSheet(f"color: {MUTED_TEXT};")
        general_col.addWidget(self.engine_note)
        general_col.addStretch(1)

        self.api_check = QCheckBox("Run the local HTTP API while the window is open")
        self.api_check.setChecked(s.api_enabled)
        self.port_spin = QSpinBox()
        self.port_spin.setRange(1024, 65535)
        self.port_spin.setValue(int(s.api_port))
        self.key_edit = QLineEdit()
        self.key_edit.setReadOnly(True)
        self.key_edit.setEchoMode(QLineEdit.EchoMode.Password)
        self.copy_key_button = QPushButton("Copy key")
        self.show_key_button = QPushButton("Show")
        self.api_status = QLabel(api_status_text(api_url))
        self.api_status.setWordWrap(True)
        self.api_status.setStyleSheet(f"color: {MUTED_TEXT};")
        key_row = QWidget()
        kr = QHBoxLayout(key_row)
        kr.setContentsMargins(0, 0, 0, 0)
        kr.addWidget(self.key_edit, 1)
        kr.addWidget(self.show_key_button)
        kr.addWidget(self.copy_key_button)
        api = QWidget()
        api_col = QVBoxLayout(api)
        api_form = QFormLayout()
        api_col.addLayout(api_form)
        api_form.addRow("", self.api_check)
        api_form.addRow("Port", self.port_spin)
        api_form.addRow("API key", key_row)
        # Outside the form: a wrapped label in a form row gets a tall empty gap above it.
        api_col.addWidget(self.api_status)
        api_col.addStretch(1)
        self.copy_key_button.clicked.connect(lambda: QGuiApplication.clipboard().setText(self.api_key()))
        self.show_key_button.clicked.connect(self._toggle_key_shown)
        self._load_key()

        self.models_page = ModelsPage(ctx, pool)
        self.tabs = QTabWidget()
        self.tabs.addTab(general, "General")
        self.tabs.addTab(self.models_page, "Models")
        self.tabs.addTab(api, "HTTP API")
        self._pool = pool
        self.system_page: SystemPage | None = None
        self.tabs.addTab(QWidget(), "System")
        self.tabs.currentChanged.connect(self._maybe_build_system)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Close)
        self.save_button = buttons.button(QDialogButtonBox.StandardButton.Save)
        buttons.accepted.connect(self.save)
        buttons.rejected.connect(self.reject)
        col = QVBoxLayout(self)
        col.addWidget(self.tabs)
        col.addWidget(buttons)
        self.tabs.setCurrentIndex(PAGES.index(page) if page in PAGES else 0)

    def _maybe_build_system(self, index: int) -> None:
        # The doctor imports torch: only when the page is looked at.
        if index == PAGES.index("system") and self.system_page is None:
            self.system_page = SystemPage(self._pool, self.ctx.models_dir)
            self.tabs.removeTab(index)
            self.tabs.insertTab(index, self.system_page, "System")
            self.tabs.setCurrentIndex(index)

    def _load_key(self) -> None:
        try:
            from multitalk_desktop.api.keys import get_or_create_key

            self.key_edit.setText(get_or_create_key(self.ctx))
        except Exception as err:  # the API may be absent from a build
            self.key_edit.setText("")
            self.api_status.setText(f"The HTTP API is not available: {err}")

    def _toggle_key_shown(self) -> None:
        hidden = self.key_edit.echoMode() == QLineEdit.EchoMode.Password
        self.key_edit.setEchoMode(QLineEdit.EchoMode.Normal if hidden else QLineEdit.EchoMode.Password)
        self.show_key_button.setText("Hide" if hidden else "Show")

    def api_key(self) -> str:
        return self.key_edit.text()

    def save(self) -> None:
        s = self.ctx.settings
        engine_before = self._engine_settings()
        s.models_dir = self.models_edit.text().strip()
        s.outputs_dir = self.outputs_edit.text().strip()
        s.profile = self.profile_combo.currentData()
        s.device = self.device_combo.currentData()
        s.compile_blocks = self.compile_check.isChecked()
        s.notify_when_done = self.notify_check.isChecked()
        s.api_enabled = self.api_check.isChecked()
        s.api_port = int(self.port_spin.value())
        s.save(self.ctx.paths)
        self.settings_saved.emit(engine_before != self._engine_settings())
        self.accept()

    def _engine_settings(self) -> tuple:
        """What the loaded engine was made with: a change means it must reload."""
        s = self.ctx.settings
        return (self.ctx.models_dir, s.profile, s.device, s.compile_blocks)

    def done(self, result: int) -> None:
        self.models_page.stop()
        super().done(result)
