"""An inline message under a form field: red for errors, amber for warnings, hidden when empty."""

from __future__ import annotations

from PySide6.QtWidgets import QLabel, QWidget

from multitalk_desktop.gui.palette import ERROR_COLOR, WARNING_COLOR


class FieldMessage(QLabel):
    def __init__(self, field: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.field = field
        self.setObjectName(f"message_{field}")
        self.setWordWrap(True)
        self.hide()

    def show_problems(self, errors: list[str], warnings: list[str]) -> None:
        lines = [f"<span style='color:{ERROR_COLOR}'>✖ {_escape(m)}</span>" for m in errors]
        lines += [f"<span style='color:{WARNING_COLOR}'>⚠ {_escape(m)}</span>" for m in warnings]
        self.setText("<br>".join(lines))
        self.setVisible(bool(lines))
        self.setProperty("severity", "error" if errors else "warning" if warnings else "")

    @property
    def has_error(self) -> bool:
        return self.property("severity") == "error" and self.isVisibleTo(self.parentWidget())


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
