"""One voice's drop zone: drop or choose an audio file (or a video, whose audio track is used),
shown with the colour of the person it drives."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import (
    QColor,
    QDragEnterEvent,
    QDropEvent,
    QMouseEvent,
    QPainter,
    QPaintEvent,
    QPen,
)
from PySide6.QtWidgets import QHBoxLayout, QLabel, QToolButton, QVBoxLayout, QWidget

from multitalk_desktop.gui.drops import local_files
from multitalk_desktop.gui.form_model import VOICE_SUFFIXES, is_video
from multitalk_desktop.gui.palette import MUTED_TEXT, speaker_color


class VoiceSlot(QWidget):
    file_dropped = Signal(str)
    open_requested = Signal()
    remove_requested = Signal()

    def __init__(self, index: int, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.index = index
        self.path = ""
        self._hover = False
        self.setAcceptDrops(True)
        self.setMinimumHeight(48)
        self.setCursor(Qt.CursorShape.PointingHandCursor)
        self.setObjectName(f"voiceSlot{index + 1}")
        self.setAccessibleName(f"Voice {index + 1}")
        self.title = QLabel(self)
        self.detail = QLabel(self)
        self.detail.setStyleSheet(f"color: {MUTED_TEXT};")
        self.detail.setWordWrap(True)
        self.title.setMinimumWidth(10)
        self.remove_button = QToolButton(self)
        self.remove_button.setText("✕")
        self.remove_button.setToolTip(f"Remove voice {index + 1}")
        self.remove_button.setAutoRaise(True)
        self.remove_button.clicked.connect(self.remove_requested)
        texts = QVBoxLayout()
        texts.setSpacing(0)
        texts.addWidget(self.title)
        texts.addWidget(self.detail)
        row = QHBoxLayout(self)
        row.setContentsMargins(16, 6, 6, 6)
        row.addLayout(texts, 1)
        row.addWidget(self.remove_button)
        self.set_file("", None)

    def set_file(self, path: str, duration_s: float | None) -> None:
        self.path = path
        who = f"Voice {self.index + 1} → Person {self.index + 1}"
        if not path:
            self.title.setText(f"<b>{who}</b>")
            self.detail.setText("Drop a recording or a video here, or click"
                                if self.index == 0 else "Optional second speaker: drop or click")
            self.remove_button.hide()
        else:
            name = Path(path).name
            self.title.setText(f"<b>{who}</b>&nbsp;&nbsp;{name}")
            bits = []
            if duration_s is not None:
                bits.append(f"{duration_s:.1f} s")
            if is_video(path):
                bits.append("audio track of this video")
            self.detail.setText(" · ".join(bits) or "checking…")
            self.remove_button.show()
        self.update()

    def paintEvent(self, event: QPaintEvent) -> None:
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        color = speaker_color(self.index)
        border = QColor("#7c8cff") if self._hover else QColor("#3a4150")
        p.setPen(QPen(border, 1, Qt.PenStyle.SolidLine if self.path else Qt.PenStyle.DashLine))
        p.setBrush(QColor("#1b1f27"))
        p.drawRoundedRect(self.rect().adjusted(1, 1, -1, -1), 8, 8)
        p.setPen(Qt.PenStyle.NoPen)
        p.setBrush(color)
        p.drawRoundedRect(6, 8, 4, self.height() - 16, 2, 2)

    def mousePressEvent(self, event: QMouseEvent) -> None:
        if event.button() == Qt.MouseButton.LeftButton:
            self.open_requested.emit()

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if local_files(event.mimeData(), VOICE_SUFFIXES):
            self._hover = True
            self.update()
            event.acceptProposedAction()
        else:
            event.ignore()

    def dragLeaveEvent(self, event) -> None:
        self._hover = False
        self.update()

    def dropEvent(self, event: QDropEvent) -> None:
        self._hover = False
        files = local_files(event.mimeData(), VOICE_SUFFIXES)
        if files:
            event.acceptProposedAction()
            self.file_dropped.emit(files[0])
        self.update()
