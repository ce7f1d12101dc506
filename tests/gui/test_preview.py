"""Timeline drawing and seeking, export, snapshots, the refcount guard."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QPoint, Qt
from PySide6.QtGui import QColor

from multitalk_desktop.gui.palette import speaker_color
from multitalk_desktop.gui.timeline import Lane, TimelineWidget


def _lane_pixels(img, rect):
    colors = set()
    for x in range(int(rect.left()) + 1, int(rect.right()) - 1, 3):
        for y in range(int(rect.top()) + 1, int(rect.bottom()) - 1, 2):
            colors.add(QColor(img.pixel(x, y)).name())
    return colors


def test_the_timeline_draws_one_coloured_lane_per_voice_where_the_voice_plays(qtbot):
    timeline = TimelineWidget()
    qtbot.addWidget(timeline)
    timeline.resize(800, 200)
    loud = np.tile([[-0.8, 0.8]], (400, 1)).astype(np.float32)
    timeline.set_duration(10_000)
    # add mode: voice 2 starts where voice 1 ends
    timeline.set_lanes([Lane("Voice 1", speaker_color(0), loud, 0.0, 5.0),
                        Lane("Voice 2", speaker_color(1), loud, 5.0, 5.0)])
    img = timeline.grab().toImage()
    first, second = timeline.lane_rect(0), timeline.lane_rect(1)
    mid = timeline.x_for_ms(5000)
    left_half = first.adjusted(0, 0, -(first.right() - mid) - 4, 0)
    right_half = second.adjusted(mid - second.left() + 4, 0, 0, 0)
    assert speaker_color(0).name() in _lane_pixels(img, left_half)
    assert speaker_color(1).name() in _lane_pixels(img, right_half)
    # voice 1 is silent (not drawn) after 5 s, voice 2 before
    assert speaker_color(0).name() not in _lane_pixels(img, first.adjusted(mid - first.left() + 4, 0, 0, 0))
    assert speaker_color(1).name() not in _lane_pixels(img, second.adjusted(0, 0, -(second.right() - mid) - 4, 0))


def test_clicking_the_timeline_seeks_and_moves_the_playhead(qtbot):
    timeline = TimelineWidget()
    qtbot.addWidget(timeline)
    timeline.resize(600, 150)
    timeline.set_duration(8000)
    with qtbot.waitSignal(timeline.seek_requested) as sought:
        x = int(timeline.x_for_ms(6000))
        qtbot.mouseClick(timeline, Qt.MouseButton.LeftButton, pos=QPoint(x, 60))
    assert abs(sought.args[0] - 6000) < 50
    assert abs(timeline.position() - 6000) < 50


def test_export_writes_a_playable_file(qtbot, pool, tmp_path):
    from multitalk_desktop.gui.export_dialog import ExportDialog
    from multitalk_desktop.jobs.store import Job
    from multitalk_desktop.media.video import probe_video, write_mp4

    t = np.arange(16000 * 2) / 16000
    src = write_mp4(np.random.default_rng(1).integers(0, 255, (50, 64, 96, 3), dtype=np.uint8), 25,
                    tmp_path / "done.mp4", audio=(0.2 * np.sin(2 * np.pi * 330 * t)).astype(np.float32))
    job = Job(id="a" * 32, state="completed", created_at=0, updated_at=0, request={}, output=str(src))
    dialog = ExportDialog(job, pool)
    qtbot.addWidget(dialog)
    dialog.preset_combo.setCurrentIndex(dialog.preset_combo.findData("mp4-small"))
    dst = tmp_path / "shared" / "export.mp4"
    dialog.destination_edit.setText(str(dst))
    with qtbot.waitSignal(dialog.export_finished, timeout=60000):
        dialog.export_button.click()
    info = probe_video(dst)
    assert info.frames == 50 and abs(info.audio_duration_s - 2.0) < 0.1
    # an existing file is only replaced when the user says yes
    dialog.confirm_overwrite = lambda path: False
    before = dst.stat().st_mtime_ns
    dialog.audio_check.setChecked(False)
    dialog.export_button.click()
    assert dst.stat().st_mtime_ns == before and "Exporting" not in dialog.status.text()


def test_snapshots_writes_four_non_blank_pngs(qtbot, tmp_path):
    from PySide6.QtGui import QImage

    from multitalk_desktop.gui.snapshots import NAMES, render_snapshots

    written = render_snapshots(tmp_path)
    assert [p.name for p in written] == list(NAMES)
    for path in written:
        img = QImage(str(path))
        assert img.width() >= 1280 and img.height() >= 800, path
        sample = {img.pixel(x, y) for x in range(0, img.width(), 37) for y in range(0, img.height(), 29)}
        assert len(sample) > 15, f"{path.name} looks blank"


def test_qt_calls_do_not_wear_down_none_on_python_311(qtbot):
    from PySide6.QtWidgets import QLabel

    label = QLabel()
    qtbot.addWidget(label)
    for _ in range(20000):  # without the guard, Python 3.11 aborts after ~5000 of these
        label.setText("x")
