"""Paints a job's progress cell as a rounded bar in its state's colour with the text on top."""

from __future__ import annotations

from PySide6.QtCore import QModelIndex, QRectF, Qt
from PySide6.QtGui import QColor, QPainter, QPainterPath
from PySide6.QtWidgets import QStyle, QStyledItemDelegate, QStyleOptionViewItem

from multitalk_desktop.gui.palette import state_color
from multitalk_desktop.gui.queue_model import FRACTION_ROLE, STATE_ROLE


class ProgressDelegate(QStyledItemDelegate):
    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: QModelIndex) -> None:
        painter.save()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        if option.state & QStyle.StateFlag.State_Selected:
            painter.fillRect(option.rect, option.palette.highlight().color().darker(160))
        state = index.data(STATE_ROLE) or ""
        fraction = float(index.data(FRACTION_ROLE) or 0.0)
        text = index.data(Qt.ItemDataRole.DisplayRole) or ""
        bar = QRectF(option.rect).adjusted(4, 5, -4, -5)
        path = QPainterPath()
        path.addRoundedRect(bar, 5, 5)
        painter.fillPath(path, QColor("#232834"))
        color = state_color(state)
        if fraction > 0:
            filled = QRectF(bar)
            filled.setWidth(max(10.0, bar.width() * fraction))
            fill_path = QPainterPath()
            fill_path.addRoundedRect(filled, 5, 5)
            shade = QColor(color)
            shade.setAlpha(150 if state == "running" else 80)
            painter.fillPath(fill_path, shade)
        painter.setPen(QColor("#f1f3f8") if state in ("running", "queued") else color.lighter(120))
        painter.drawText(bar.adjusted(8, 0, -8, 0), Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignLeft,
                         painter.fontMetrics().elidedText(text, Qt.TextElideMode.ElideRight, int(bar.width()) - 16))
        painter.restore()
