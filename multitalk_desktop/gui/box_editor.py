"""The portrait with one box per speaker, drawn in that speaker's colour, draggable and resizable.

Boxes are kept in source-image pixels (what the request carries); the widget maps them to its
own letterboxed view. It is also the image's drop zone: drop a picture on it or click it.
"""

from __future__ import annotations

from PySide6.QtCore import QPointF, QRectF, QSize, Qt, Signal
from PySide6.QtGui import (
    QColor,
    QDragEnterEvent,
    QDropEvent,
    QFont,
    QImage,
    QMouseEvent,
    QPainter,
    QPainterPath,
    QPaintEvent,
    QPen,
    QPixmap,
)
from PySide6.QtWidgets import QSizePolicy, QWidget

from multitalk_desktop.gui.drops import local_files
from multitalk_desktop.gui.form_model import IMAGE_SUFFIXES
from multitalk_desktop.gui.palette import ERROR_COLOR, MUTED_TEXT, speaker_color

Box = tuple[int, int, int, int]
HANDLE_PX = 9
MIN_BOX_PX = 16  # source pixels: smaller than one latent patch row makes no sense


class BoxEditor(QWidget):
    boxes_edited = Signal(list)  # new boxes in source pixels, after a drag
    image_dropped = Signal(str)
    open_requested = Signal()  # clicked with no image: the form opens a file dialog

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setAcceptDrops(True)
        self.setMouseTracking(True)
        # 200 px tall at least: the whole form, with two voices, fits a 1280x800 window unscrolled.
        self.setMinimumSize(260, 200)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setAccessibleName("Portrait and speaker boxes")
        self._image: QImage | None = None
        self._source_size: tuple[int, int] | None = None
        self._boxes: list[Box] = []
        self._box_errors: dict[int, str] = {}
        self._drag: tuple[int, str, QPointF, Box] | None = None  # (box, handle, start, box at start)
        self._drop_hover = False
        self._scaled: QPixmap | None = None  # the image at its drawn size: smooth-scaled once, not per paint
        self._placeholder = "Drop a portrait here\nor click to choose one\n(PNG, JPEG, WebP; one or two people)"

    # ------------------------------------------------------------------ state from the model
    def set_image(self, image: QImage | None, source_size: tuple[int, int] | None) -> None:
        self._image = image
        self._source_size = source_size
        self._scaled = None
        self.update()

    def set_boxes(self, boxes: list[Box]) -> None:
        if self._drag is None:
            self._boxes = [tuple(b) for b in boxes]
            self.update()

    def set_box_errors(self, errors: dict[int, str]) -> None:
        """index (0-based) -> message; such boxes are drawn red and dashed."""
        self._box_errors = dict(errors)
        self.update()

    def boxes(self) -> list[Box]:
        return list(self._boxes)

    # ------------------------------------------------------------------ geometry
    def image_rect(self) -> QRectF:
        """Where the image is drawn: fitted, centred, aspect kept (never stretched)."""
        if self._source_size is None:
            return QRectF()
        w, h = self._source_size
        area = QRectF(self.rect()).adjusted(6, 6, -6, -6)
        scale = min(area.width() / w, area.height() / h)
        dw, dh = w * scale, h * scale
        return QRectF(area.center().x() - dw / 2, area.center().y() - dh / 2, dw, dh)

    def _scale(self) -> float:
        r = self.image_rect()
        return r.width() / self._source_size[0] if self._source_size else 1.0

    def box_to_view(self, box: Box) -> QRectF:
        r, s = self.image_rect(), self._scale()
        x0, y0, x1, y1 = box
        return QRectF(r.x() + x0 * s, r.y() + y0 * s, (x1 - x0) * s, (y1 - y0) * s)

    def _hit(self, pos: QPointF) -> tuple[int, str] | None:
        """(box index, handle) under `pos`; the handle is a corner name or "move"."""
        for index in reversed(range(len(self._boxes))):
            rect = self.box_to_view(self._boxes[index])
            corners = {"tl": rect.topLeft(), "tr": rect.topRight(), "bl": rect.bottomLeft(),
                       "br": rect.bottomRight()}
            for name, point in corners.items():
                if abs(pos.x() - point.x()) <= HANDLE_PX and abs(pos.y() - point.y()) <= HANDLE_PX:
                    return index, name
        for index in reversed(range(len(self._boxes))):
            if self.box_to_view(self._boxes[index]).contains(pos):
                return index, "move"
        return None

    # ------------------------------------------------------------------ painting
    def paintEvent(self, event: QPaintEvent) -> None:
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
        frame = QRectF(self.rect()).adjusted(1, 1, -1, -1)
        border = QColor("#7c8cff") if self._drop_hover else QColor("#3a4150")
        p.setPen(QPen(border, 2 if self._drop_hover else 1, Qt.PenStyle.DashLine
                      if self._image is None else Qt.PenStyle.SolidLine))
        p.setBrush(QColor("#1b1f27"))
        p.drawRoundedRect(frame, 10, 10)
        if self._image is None:
            p.setPen(QColor(MUTED_TEXT))
            font = QFont(self.font())
            font.setPointSizeF(font.pointSizeF() * 1.1)
            p.setFont(font)
            p.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, self._placeholder)
            return
        target = self.image_rect()
        ratio = self.devicePixelRatioF()
        want = QSize(max(1, round(target.width() * ratio)), max(1, round(target.height() * ratio)))
        if self._scaled is None or self._scaled.size() != want:
            self._scaled = QPixmap.fromImage(self._image.scaled(
                want, Qt.AspectRatioMode.IgnoreAspectRatio, Qt.TransformationMode.SmoothTransformation))
            self._scaled.setDevicePixelRatio(ratio)
        p.drawPixmap(target.topLeft(), self._scaled)
        for index, box in enumerate(self._boxes):
            self._paint_box(p, index, box)

    def _paint_box(self, p: QPainter, index: int, box: Box) -> None:
        rect = self.box_to_view(box)
        color = speaker_color(index)
        bad = index in self._box_errors
        fill = QColor(color)
        fill.setAlpha(38)
        p.setBrush(fill)
        pen = QPen(QColor(ERROR_COLOR) if bad else color, 2.5)
        if bad:
            pen.setStyle(Qt.PenStyle.DashLine)
        p.setPen(pen)
        p.drawRect(rect)
        # corner handles
        p.setBrush(color)
        p.setPen(QPen(QColor("#10131a"), 1))
        for corner in (rect.topLeft(), rect.topRight(), rect.bottomLeft(), rect.bottomRight()):
            p.drawRect(QRectF(corner.x() - 4, corner.y() - 4, 8, 8))
        # name tag
        label = f"Person {index + 1}" + ("  ⚠" if bad else "")
        font = QFont(self.font())
        font.setBold(True)
        p.setFont(font)
        tw = p.fontMetrics().horizontalAdvance(label) + 14
        th = p.fontMetrics().height() + 6
        tag = QRectF(rect.x(), max(0.0, rect.y() - th - 2), tw, th)
        if tag.y() < self.image_rect().y():
            tag.moveTop(rect.y() + 3)
            tag.moveLeft(rect.x() + 3)
        path = QPainterPath()
        path.addRoundedRect(tag, 5, 5)
        p.fillPath(path, QColor(ERROR_COLOR) if bad else color)
        p.setPen(QColor("#10131a"))
        p.drawText(tag, Qt.AlignmentFlag.AlignCenter, label)

    # ------------------------------------------------------------------ mouse
    def mousePressEvent(self, event: QMouseEvent) -> None:
        if event.button() != Qt.MouseButton.LeftButton:
            return
        if self._image is None:
            self.open_requested.emit()
            return
        hit = self._hit(event.position())
        if hit is not None:
            index, handle = hit
            self._drag = (index, handle, event.position(), self._boxes[index])

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        if self._drag is None:
            hit = self._hit(event.position())
            shape = Qt.CursorShape.ArrowCursor
            if hit is not None:
                shape = {"move": Qt.CursorShape.SizeAllCursor, "tl": Qt.CursorShape.SizeFDiagCursor,
                         "br": Qt.CursorShape.SizeFDiagCursor}.get(hit[1], Qt.CursorShape.SizeBDiagCursor)
            self.setCursor(shape)
            return
        index, handle, start, original = self._drag
        s = self._scale() or 1.0
        dx = (event.position().x() - start.x()) / s
        dy = (event.position().y() - start.y()) / s
        self._boxes[index] = self._dragged_box(original, handle, dx, dy)
        self.update()

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:
        if self._drag is not None and event.button() == Qt.MouseButton.LeftButton:
            self._drag = None
            self.boxes_edited.emit(list(self._boxes))

    def _dragged_box(self, box: Box, handle: str, dx: float, dy: float) -> Box:
        w, h = self._source_size or (1, 1)
        x0, y0, x1, y1 = box
        if handle == "move":
            dx = min(max(dx, -x0), w - x1)  # keep the whole box on the image
            dy = min(max(dy, -y0), h - y1)
            return (round(x0 + dx), round(y0 + dy), round(x1 + dx), round(y1 + dy))
        nx0, ny0, nx1, ny1 = float(x0), float(y0), float(x1), float(y1)
        if "l" in handle:
            nx0 = min(max(0.0, x0 + dx), x1 - MIN_BOX_PX)
        if "r" in handle:
            nx1 = max(min(float(w), x1 + dx), x0 + MIN_BOX_PX)
        if "t" in handle:
            ny0 = min(max(0.0, y0 + dy), y1 - MIN_BOX_PX)
        if "b" in handle:
            ny1 = max(min(float(h), y1 + dy), y0 + MIN_BOX_PX)
        return (round(nx0), round(ny0), round(nx1), round(ny1))

    # ------------------------------------------------------------------ drops
    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if local_files(event.mimeData(), IMAGE_SUFFIXES):
            self._drop_hover = True
            self.update()
            event.acceptProposedAction()
        else:
            event.ignore()

    def dragLeaveEvent(self, event) -> None:
        self._drop_hover = False
        self.update()

    def dropEvent(self, event: QDropEvent) -> None:
        self._drop_hover = False
        files = local_files(event.mimeData(), IMAGE_SUFFIXES)
        if files:
            event.acceptProposedAction()
            self.image_dropped.emit(files[0])
        self.update()
