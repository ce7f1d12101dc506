"""The job form: drops, validation shown inline, speaker boxes, the expected length."""

from __future__ import annotations

from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl
from PySide6.QtGui import QDropEvent

from multitalk_desktop.gui.background import TaskPool
from multitalk_desktop.gui.form_model import JobFormModel
from multitalk_desktop.gui.job_form import JobForm
from tests.gui.conftest import wait_for_report


def drop_files(widget, paths) -> None:
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    pos = QPointF(widget.width() / 2, widget.height() / 2)
    widget.dragEnterEvent(_drag_enter(pos, mime))
    event = QDropEvent(pos, Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                       Qt.KeyboardModifier.NoModifier)
    widget.dropEvent(event)


def _drag_enter(pos, mime):
    from PySide6.QtGui import QDragEnterEvent

    return QDragEnterEvent(pos.toPoint(), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                           Qt.KeyboardModifier.NoModifier)


def make_form(qtbot, pool: TaskPool) -> tuple[JobFormModel, JobForm]:
    model = JobFormModel(pool)
    form = JobForm(model, pool)
    qtbot.addWidget(form)
    form.resize(460, 900)
    form.show()
    return model, form


def test_dropped_image_and_voices_fill_the_form_and_enable_submit(qtbot, pool, examples):
    model, form = make_form(qtbot, pool)
    assert not form.submit_button.isEnabled()
    drop_files(form.box_editor, [examples / "multi3.png"])
    drop_files(form.voice_slots[0], [examples / "1-man.WAV"])
    drop_files(form.voice_slots[1], [examples / "1-woman.WAV"])
    assert model.image.endswith("multi3.png")
    assert [v.rsplit("/", 1)[-1] for v in model.voices] == ["1-man.WAV", "1-woman.WAV"]
    report = wait_for_report(qtbot, model)
    assert report.ok, report.errors
    qtbot.waitUntil(form.submit_button.isEnabled, timeout=5000)
    # 'add': the voices play one after the other, 8.5 s + 8.5 s
    assert "17.0 s" in form.summary_label.text() and "8</b> clips" in form.summary_label.text()
    # default boxes: the official left and right halves with 5 % margins
    assert model.boxes == [(53, 66, 1019, 1257), (1126, 66, 2092, 1257)]


def test_a_dropped_video_gives_its_audio_as_a_voice(qtbot, pool, examples, voice_video):
    model, form = make_form(qtbot, pool)
    model.set_image(str(examples / "single1.png"))
    drop_files(form.voice_slots[0], [voice_video])
    assert model.voices == [str(voice_video)]
    report = wait_for_report(qtbot, model)
    assert report.ok, report.errors
    qtbot.waitUntil(lambda: "audio track of this video" in form.voice_slots[0].detail.text(), timeout=5000)
    assert "1.5 s" in form.voice_slots[0].detail.text()


def test_a_drop_of_the_wrong_kind_is_refused(qtbot, pool, examples):
    model, form = make_form(qtbot, pool)
    drop_files(form.box_editor, [examples / "1.wav"])
    drop_files(form.voice_slots[0], [examples / "single1.png"])
    assert model.image == "" and model.voices == []


def test_validation_messages_appear_next_to_the_field_and_clear(qtbot, pool, examples):
    model, form = make_form(qtbot, pool)
    model.set_image(str(examples / "single1.png"))
    model.add_voice(str(examples / "1.wav"))
    assert wait_for_report(qtbot, model).ok
    form.steps_spin.setValue(0)
    qtbot.waitUntil(lambda: form.message("steps").isVisible(), timeout=5000)
    assert "Steps must be a whole number from 1 to 100" in form.message("steps").text()
    assert not form.submit_button.isEnabled()
    form.steps_spin.setValue(30)
    qtbot.waitUntil(lambda: not form.message("steps").isVisible(), timeout=5000)
    qtbot.waitUntil(form.submit_button.isEnabled, timeout=5000)


def test_impossible_boxes_are_flagged_before_submit(qtbot, pool, examples):
    model, form = make_form(qtbot, pool)
    model.set_image(str(examples / "multi3.png"))
    model.add_voice(str(examples / "1-man.WAV"))
    model.add_voice(str(examples / "1-woman.WAV"))
    assert wait_for_report(qtbot, model).ok
    model.set_boxes([(100, 100, 900, 1200), (1500, 100, 2500, 1200)])  # box 2 leaves the image
    qtbot.waitUntil(lambda: form.message("boxes").isVisible(), timeout=5000)
    assert "outside the 2146x1324 image" in form.message("boxes").text()
    assert form.box_editor._box_errors.keys() == {1}
    assert not form.submit_button.isEnabled()
    form.reset_boxes_button.click()
    qtbot.waitUntil(lambda: not form.message("boxes").isVisible(), timeout=5000)
    assert form.box_editor._box_errors == {}


def test_dragging_a_box_corner_resizes_it_in_image_pixels(qtbot, pool, examples):
    model, form = make_form(qtbot, pool)
    model.set_image(str(examples / "multi3.png"))
    model.add_voice(str(examples / "1-man.WAV"))
    model.add_voice(str(examples / "1-woman.WAV"))
    editor = form.box_editor
    qtbot.waitUntil(lambda: editor._image is not None, timeout=5000)
    before = model.boxes[0]
    corner = editor.box_to_view(before).bottomRight()
    start = QPoint(int(round(corner.x())), int(round(corner.y())))
    qtbot.mousePress(editor, Qt.MouseButton.LeftButton, pos=start)
    qtbot.mouseMove(editor, start - QPoint(40, 30))
    qtbot.mouseRelease(editor, Qt.MouseButton.LeftButton, pos=start - QPoint(40, 30))
    after = model.boxes[0]
    assert not model.boxes_are_default
    assert after[:2] == before[:2]  # the top-left corner stays
    assert after[2] < before[2] - 50 and after[3] < before[3] - 50
    assert model.request().boxes[0] == after


def test_audio_mode_explains_add_and_para(qtbot, pool):
    model, form = make_form(qtbot, pool)
    assert "take turns" in form.audio_type_help.text()
    model.set_option("audio_type", "para")
    assert "same time" in form.audio_type_help.text()


def test_the_random_seed_button_changes_the_seed(qtbot, pool):
    model, form = make_form(qtbot, pool)
    seeds = set()
    for _ in range(3):
        form.random_seed_button.click()
        seeds.add(model.seed)
    assert len(seeds) > 1
