"""The look: Qt's Fusion style with a dark palette (the same on every platform, easy on the eyes
in a dim room where video work happens) and the style sheet in resources/style/app.qss."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtGui import QColor, QIcon, QPalette
from PySide6.QtWidgets import QApplication

RESOURCES = Path(__file__).resolve().parents[2] / "resources"
STYLE_SHEET = RESOURCES / "style" / "app.qss"
ICONS = RESOURCES / "icons"


def apply_theme(app: QApplication) -> None:
    app.setStyle("Fusion")
    pal = QPalette()
    colors = {
        QPalette.ColorRole.Window: "#14171d",
        QPalette.ColorRole.WindowText: "#e6e9f0",
        QPalette.ColorRole.Base: "#1b1f27",
        QPalette.ColorRole.AlternateBase: "#1a1e26",
        QPalette.ColorRole.ToolTipBase: "#262b36",
        QPalette.ColorRole.ToolTipText: "#e6e9f0",
        QPalette.ColorRole.Text: "#e6e9f0",
        QPalette.ColorRole.Button: "#262b36",
        QPalette.ColorRole.ButtonText: "#e6e9f0",
        QPalette.ColorRole.BrightText: "#ffffff",
        QPalette.ColorRole.Highlight: "#5b6cff",
        QPalette.ColorRole.HighlightedText: "#ffffff",
        QPalette.ColorRole.Link: "#8ea0ff",
        QPalette.ColorRole.PlaceholderText: "#6b7385",
    }
    for role, value in colors.items():
        pal.setColor(role, QColor(value))
    for role in (QPalette.ColorRole.Text, QPalette.ColorRole.ButtonText, QPalette.ColorRole.WindowText):
        pal.setColor(QPalette.ColorGroup.Disabled, role, QColor("#6b7385"))
    app.setPalette(pal)
    if STYLE_SHEET.is_file():
        app.setStyleSheet(STYLE_SHEET.read_text(encoding="utf-8"))


def app_icon() -> QIcon:
    """The app icon from resources/icons when the packaging work has put one there."""
    icon = QIcon()
    if ICONS.is_dir():
        for path in sorted(ICONS.glob("*.png")) + sorted(ICONS.glob("*.svg")):
            icon.addFile(str(path))
    return icon
