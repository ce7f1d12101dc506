"""Shows video frames from a QVideoSink (and, while a job runs, its latest preview image).

Painting frames ourselves instead of using QVideoWidget keeps the picture inside the widget tree:
it works offscreen, in `grab()` (snapshots, tests) and under any platform plugin."""

from __future__ import annotations

from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QColor, QImage, QPainter, QPaintEvent
from PySide6.QtMultimedia import QVideoFrame
from PySide6.QtWidgets import QSizePolicy, QWidget

from multitalk_desktop.gui.palette import MUTED_TEXT


class VideoView(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setMinimumSize(240, 150)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self._image: QImage | None = None
        self._message = "Select a finished job to watch it here."
        self._badge = ""
        self.frames_shown = 0

    def set_message(self, text: str) -> None:
        self._image = None
        self._message = text
        self.update()

    def set_image(self, image: QImage | None, badge: str = "") -> None:
        self._image = image if image is not None and not image.isNull() else None
        self._badge = badge
        self.update()

    def image(self) -> QImage | None:
        return self._image

    def on_video_frame(self, frame: QVideoFrame) -> None:
        if frame.isValid():
            image = frame.toImage()
            if not image.isNull():
                self._image = image
                self._badge = ""
                self.frames_shown += 1
                self.update()

    def paintEvent(self, event: QPaintEvent) -> None:
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
        p.fillRect(self.rect(), QColor("#0c0e12"))
        if self._image is None:
            p.setPen(QColor(MUTED_TEXT))
            p.drawText(self.rect().adjusted(20, 20, -20, -20),
                       Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap, self._message)
            return
        img = self._image
        scale = min(self.width() / img.width(), self.height() / img.height())
        w, h = img.width() * scale, img.height() * scale
        p.drawImage(QRectF((self.width() - w) / 2, (self.height() - h) / 2, w, h), img)
        if self._badge:
            p.setRenderHint(QPainter.RenderHint.Antialiasing)
            metrics = p.fontMetrics()
            box = QRectF(10, 10, metrics.horizontalAdvance(self._badge) + 16, metrics.height() + 8)
            p.setBrush(QColor(0, 0, 0, 170))
            p.setPen(Qt.PenStyle.NoPen)
            p.drawRoundedRect(box, 5, 5)
            p.setPen(QColor("#ffffff"))
            p.drawText(box, Qt.AlignmentFlag.AlignCenter, self._badge)
