"""The timeline under the player: a time ruler, a strip of frame thumbnails, one waveform lane per
voice in that speaker's colour (placed where the voice plays: in `add` mode voice 2 follows voice
1), and the playhead. Click or drag anywhere to seek; the player moves the playhead back."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QImage, QMouseEvent, QPainter, QPaintEvent, QPen, QPolygonF
from PySide6.QtWidgets import QSizePolicy, QWidget

from multitalk_desktop.gui.palette import MUTED_TEXT

RULER_H = 18
THUMBS_H = 46
LANE_H = 38
LABEL_W = 74
GAP = 4


@dataclass
class Lane:
    label: str
    color: QColor
    peaks: np.ndarray | None  # [buckets, 2] (min, max) in -1..1; None while it is computed
    offset_s: float = 0.0  # where in the video this voice starts
    duration_s: float = 0.0


class TimelineWidget(QWidget):
    seek_requested = Signal(int)  # milliseconds

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setAccessibleName("Timeline")
        self._duration_ms = 0
        self._position_ms = 0
        self._lanes: list[Lane] = []
        self._thumbs: list[QImage] = []
        self.frames_hint = ""  # what the empty frame strip says; empty: a generic hint
        self._dragging = False
        self._update_height()

    # ------------------------------------------------------------------ state
    def set_duration(self, ms: int) -> None:
        self._duration_ms = max(0, int(ms))
        self.update()

    def duration(self) -> int:
        return self._duration_ms

    def set_position(self, ms: int) -> None:
        if int(ms) != self._position_ms:
            self._position_ms = int(ms)
            self.update()

    def position(self) -> int:
        return self._position_ms

    def set_lanes(self, lanes: list[Lane]) -> None:
        self._lanes = list(lanes)
        self._update_height()
        self.update()

    def lanes(self) -> list[Lane]:
        return list(self._lanes)

    def set_thumbnails(self, images: list[QImage]) -> None:
        self._thumbs = list(images)
        self.update()

    def clear(self) -> None:
        self._lanes, self._thumbs = [], []
        self.frames_hint = ""
        self._duration_ms = self._position_ms = 0
        self._update_height()
        self.update()

    def _update_height(self) -> None:
        lanes = max(1, len(self._lanes))
        self.setFixedHeight(RULER_H + THUMBS_H + GAP + lanes * (LANE_H + GAP) + 4)

    # ------------------------------------------------------------------ geometry
    def track_rect(self) -> QRectF:
        """The area where time runs left to right (right of the lane labels)."""
        return QRectF(LABEL_W, 0, max(1.0, self.width() - LABEL_W - 8), self.height())

    def lane_rect(self, index: int) -> QRectF:
        t = self.track_rect()
        top = RULER_H + THUMBS_H + GAP + index * (LANE_H + GAP)
        return QRectF(t.x(), top, t.width(), LANE_H)

    def x_for_ms(self, ms: float) -> float:
        t = self.track_rect()
        if self._duration_ms <= 0:
            return t.x()
        return t.x() + t.width() * max(0.0, min(1.0, ms / self._duration_ms))

    def ms_for_x(self, x: float) -> int:
        t = self.track_rect()
        frac = max(0.0, min(1.0, (x - t.x()) / t.width()))
        return int(round(frac * self._duration_ms))

    # ------------------------------------------------------------------ painting
    def paintEvent(self, event: QPaintEvent) -> None:
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        p.fillRect(self.rect(), QColor("#12151b"))
        self._paint_ruler(p)
        self._paint_thumbs(p)
        for i, lane in enumerate(self._lanes):
            self._paint_lane(p, i, lane)
        if self._duration_ms > 0:
            x = self.x_for_ms(self._position_ms)
            p.setPen(QPen(QColor("#ffffff"), 2))
            p.drawLine(QPointF(x, 2), QPointF(x, self.height() - 2))
            p.setBrush(QColor("#ffffff"))
            p.setPen(Qt.PenStyle.NoPen)
            p.drawPolygon(QPolygonF([QPointF(x - 6, 0), QPointF(x + 6, 0), QPointF(x, 8)]))

    def _paint_ruler(self, p: QPainter) -> None:
        t = self.track_rect()
        p.setPen(QColor(MUTED_TEXT))
        font = p.font()
        font.setPointSizeF(max(7.0, font.pointSizeF() * 0.8))
        p.setFont(font)
        if self._duration_ms <= 0:
            return
        seconds = self._duration_ms / 1000
        step = next(s for s in (0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 1e9)
                    if t.width() / max(seconds / s, 1e-9) >= 48)
        n = 0
        while n * step <= seconds + 1e-6:
            x = self.x_for_ms(n * step * 1000)
            p.drawLine(QPointF(x, RULER_H - 5), QPointF(x, RULER_H))
            label = f"{int(n * step // 60)}:{int(n * step % 60):02d}" if step >= 1 else f"{n * step:.1f}"
            p.drawText(QRectF(x + 3, 0, 60, RULER_H - 3), Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter, label)
            n += 1

    def _paint_thumbs(self, p: QPainter) -> None:
        t = self.track_rect()
        strip = QRectF(t.x(), RULER_H, t.width(), THUMBS_H)
        p.fillRect(strip, QColor("#1b1f27"))
        p.setPen(QColor(MUTED_TEXT))
        p.drawText(QRectF(4, RULER_H, LABEL_W - 8, THUMBS_H), Qt.AlignmentFlag.AlignVCenter, "Frames")
        if not self._thumbs:
            # An empty strip looks broken; say what will fill it.
            hint = self.frames_hint or ("Frames appear here when the video is made." if self._lanes
                                        else "Select a job: its frames and one waveform lane per voice appear here.")
            p.drawText(strip, Qt.AlignmentFlag.AlignCenter, hint)
            return
        w = strip.width() / len(self._thumbs)
        for i, img in enumerate(self._thumbs):
            cell = QRectF(strip.x() + i * w, strip.y(), w, strip.height())
            if img.isNull():
                continue
            # cover the cell, cropping the image's middle (never stretched)
            scale = max(cell.width() / img.width(), cell.height() / img.height())
            sw, sh = cell.width() / scale, cell.height() / scale
            src = QRectF((img.width() - sw) / 2, (img.height() - sh) / 2, sw, sh)
            p.drawImage(cell, img, src)
            p.setPen(QPen(QColor("#12151b"), 1))
            p.drawLine(cell.topRight(), cell.bottomRight())

    def _paint_lane(self, p: QPainter, index: int, lane: Lane) -> None:
        rect = self.lane_rect(index)
        p.fillRect(rect, QColor("#181c23"))
        label_rect = QRectF(4, rect.y(), LABEL_W - 8, rect.height())
        p.setPen(lane.color)
        p.drawText(label_rect, Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignLeft, lane.label)
        p.fillRect(QRectF(0, rect.y() + 4, 3, rect.height() - 8), lane.color)
        if lane.peaks is None or self._duration_ms <= 0 or lane.duration_s <= 0:
            p.setPen(QColor(MUTED_TEXT))
            p.drawText(rect, Qt.AlignmentFlag.AlignCenter, "…" if lane.peaks is None else "")
            return
        x0 = self.x_for_ms(lane.offset_s * 1000)
        x1 = self.x_for_ms((lane.offset_s + lane.duration_s) * 1000)
        width = max(1, int(x1 - x0))
        peaks = _resample_peaks(lane.peaks, width)
        mid, half = rect.center().y(), rect.height() / 2 - 2
        color = QColor(lane.color)
        p.setPen(QPen(color, 1))
        # Normalised per lane: a quiet recording should still show where its words are.
        loudest = float(np.max(np.abs(peaks))) if peaks.size else 0.0
        gain = 0.95 / loudest if loudest > 1e-4 else 1.0
        for i, (lo, hi) in enumerate(peaks):
            x = x0 + i + 0.5
            top, bottom = mid - hi * gain * half, mid - lo * gain * half
            if bottom - top < 1:
                bottom = top + 1
            p.drawLine(QPointF(x, top), QPointF(x, bottom))

    # ------------------------------------------------------------------ mouse: click / drag to seek
    def mousePressEvent(self, event: QMouseEvent) -> None:
        if event.button() == Qt.MouseButton.LeftButton and self._duration_ms > 0:
            self._dragging = True
            self._seek_to(event.position().x())

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        if self._dragging:
            self._seek_to(event.position().x())

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:
        self._dragging = False

    def _seek_to(self, x: float) -> None:
        ms = self.ms_for_x(x)
        self.set_position(ms)
        self.seek_requested.emit(ms)


def _resample_peaks(peaks: np.ndarray, width: int) -> np.ndarray:
    """Peaks for `width` pixel columns: min of mins, max of maxes over each column's buckets."""
    n = len(peaks)
    if n == 0:
        return np.zeros((width, 2), np.float32)
    edges = np.linspace(0, n, width + 1).astype(int)
    edges[1:] = np.maximum(edges[1:], edges[:-1] + 1)
    edges = np.minimum(edges, n)
    starts = np.minimum(edges[:-1], n - 1)
    lows = np.minimum.reduceat(peaks[:, 0], starts)
    highs = np.maximum.reduceat(peaks[:, 1], starts)
    return np.stack([lows, highs], axis=1)
