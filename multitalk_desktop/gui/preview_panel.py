"""The preview (right, bottom): the finished video in a QtMultimedia player over the timeline,
or, while the selected job runs, its latest preview image; then the job's details.

The player is not created while the window is being built: loading the multimedia backend (the
FFmpeg plugin and its libraries) costs time the window's start-up should not pay. Soon after the
window shows, `warm_multimedia_files()` reads those libraries in the task pool and
`prewarm_player()` then creates the player on the GUI thread from a warm disk cache (~10 ms while
the user is still reading the window, instead of 25 ms or more, cold, when the first finished job
is opened). Waveform peaks and thumbnails are computed in the task pool."""

from __future__ import annotations

import re
from pathlib import Path

from PySide6.QtCore import QUrl, Signal
from PySide6.QtGui import QImage
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from multitalk_desktop.engine.protocol import ProgressEvent
from multitalk_desktop.gui.background import TaskPool
from multitalk_desktop.gui.job_details import JobDetails
from multitalk_desktop.gui.job_form import section_title
from multitalk_desktop.gui.palette import MUTED_TEXT, speaker_color
from multitalk_desktop.gui.progress_text import running_text
from multitalk_desktop.gui.timeline import Lane, TimelineWidget
from multitalk_desktop.gui.timeline_data import TimelineData, load_timeline_data
from multitalk_desktop.gui.video_view import VideoView
from multitalk_desktop.jobs.store import Job

SONAME = re.compile(r"\.so\.\d+$")

# What the timeline's frame strip says while it has no frames, by job state.
FRAMES_HINTS = {
    "queued": "Frames appear here when the video is made.",
    "running": "Frames appear here when the video is made.",
    "completed": "Loading the frames…",
    "failed": "No frames: this job made no video.",
    "cancelled": "No frames: this job was cancelled.",
    "interrupted": "No frames yet: resume the job to finish its video.",
}


def multimedia_library_files() -> list[Path]:
    """The files Qt loads when the first media player is made: the multimedia plugins and the Qt
    Multimedia / FFmpeg libraries beside Qt's own (whatever of them this installation has)."""
    from PySide6.QtCore import QLibraryInfo

    plugins = Path(QLibraryInfo.path(QLibraryInfo.LibraryPath.PluginsPath)) / "multimedia"
    libs = Path(QLibraryInfo.path(QLibraryInfo.LibraryPath.LibrariesPath))
    found = [f for f in plugins.glob("*") if f.is_file()] if plugins.is_dir() else []
    if libs.is_dir():
        for pattern in ("*Qt6Multimedia.*", "*Qt6Multimedia.so*", "*avcodec*", "*avformat*",
                        "*avutil*", "*swresample*", "*swscale*"):
            # A wheel ships libavcodec.so, .so.63 and .so.63.1.101 as three copies; the dynamic
            # loader opens the soname (.so.<major>) only.
            found.extend(f for f in libs.glob(pattern)
                         if f.is_file() and (".so" not in f.name or SONAME.search(f.name)))
    return sorted(set(found))


def warm_multimedia_files(chunk: int = 1 << 20) -> int:
    """Read the multimedia libraries once (pool thread) so that loading them later, on the GUI
    thread, finds them in the page cache. Returns the bytes read."""
    total = 0
    for path in multimedia_library_files():
        try:
            with open(path, "rb", buffering=0) as fh:
                while data := fh.read(chunk):
                    total += len(data)
        except OSError:
            continue
    return total


def warm_image_decoders() -> None:
    """Encode and decode a tiny PNG (pool thread: QImage is thread-safe). The first decode makes Qt
    scan its image-format plugins, 6 ms warm and 12 ms or more cold, which would otherwise be paid
    on the GUI thread by a running job's first preview image."""
    from PySide6.QtCore import QBuffer, QByteArray, QIODevice

    image = QImage(4, 4, QImage.Format.Format_RGB888)
    image.fill(0)
    data = QByteArray()
    buffer = QBuffer(data)
    buffer.open(QIODevice.OpenModeFlag.WriteOnly)
    image.save(buffer, "PNG")
    buffer.close()
    QImage.fromData(bytes(data))


def rgb_to_qimage(frame) -> QImage:
    h, w, _ = frame.shape
    return QImage(frame.tobytes(), w, h, 3 * w, QImage.Format.Format_RGB888).copy()


def _clock(ms: int) -> str:
    s = max(0, int(ms)) // 1000
    return f"{s // 60}:{s % 60:02d}"


class PreviewPanel(QWidget):
    export_requested = Signal(object)  # Job
    timeline_loaded = Signal()

    def __init__(self, pool: TaskPool, cache_dir: Path, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._pool = pool
        self._cache_dir = cache_dir
        self.job: Job | None = None
        self._player = None
        self._audio = None
        self._sink = None
        self.video_view = VideoView()
        self.play_button = QPushButton("▶ Play")
        self.play_button.setEnabled(False)
        self.time_label = QLabel("0:00 / 0:00")
        self.time_label.setStyleSheet(f"color: {MUTED_TEXT};")
        self.export_button = QPushButton("Export…")
        self.export_button.setEnabled(False)
        self.timeline = TimelineWidget()
        self.details = JobDetails()
        controls = QHBoxLayout()
        controls.addWidget(self.play_button)
        controls.addWidget(self.time_label)
        controls.addStretch(1)
        controls.addWidget(self.export_button)
        col = QVBoxLayout(self)
        col.setContentsMargins(10, 6, 10, 8)
        col.setSpacing(6)
        col.addWidget(section_title("Preview"))
        col.addWidget(self.video_view, 1)
        col.addLayout(controls)
        col.addWidget(self.timeline)
        col.addWidget(self.details)
        self.play_button.clicked.connect(self.toggle_play)
        self.export_button.clicked.connect(lambda: self.job and self.export_requested.emit(self.job))
        self.timeline.seek_requested.connect(self.seek)

    # ------------------------------------------------------------------ player (lazy)
    def player(self):
        if self._player is None:
            from PySide6.QtMultimedia import QAudioOutput, QMediaPlayer, QVideoSink

            self._player = QMediaPlayer(self)
            self._audio = QAudioOutput(self)
            self._sink = QVideoSink(self)
            self._player.setAudioOutput(self._audio)
            self._player.setVideoSink(self._sink)
            self._sink.videoFrameChanged.connect(self.video_view.on_video_frame)
            self._player.positionChanged.connect(self._on_position)
            self._player.durationChanged.connect(self._on_duration)
            self._player.playbackStateChanged.connect(self._on_state)
        return self._player

    def prewarm_player(self) -> None:
        """Create the player now (GUI thread, while idle), so opening the first finished job does
        not load the multimedia backend in the middle of the user's work."""
        self.player()

    def stop_player(self) -> None:
        if self._player is not None:
            self._player.stop()
            self._player.setSource(QUrl())

    def toggle_play(self) -> None:
        player = self.player()
        if player.playbackState() == player.PlaybackState.PlayingState:
            player.pause()
        else:
            player.play()

    def seek(self, ms: int) -> None:
        if self._player is not None:
            self._player.setPosition(int(ms))
        self.time_label.setText(f"{_clock(ms)} / {_clock(self.timeline.duration())}")

    def _on_position(self, ms: int) -> None:
        self.timeline.set_position(ms)
        self.time_label.setText(f"{_clock(ms)} / {_clock(self.timeline.duration())}")

    def _on_duration(self, ms: int) -> None:
        if ms > 0:
            self.timeline.set_duration(ms)

    def _on_state(self, state) -> None:
        from PySide6.QtMultimedia import QMediaPlayer

        playing = state == QMediaPlayer.PlaybackState.PlayingState
        self.play_button.setText("❚❚ Pause" if playing else "▶ Play")

    # ------------------------------------------------------------------ jobs
    def show_job(self, job: Job | None) -> None:
        same = job is not None and self.job is not None and job.id == self.job.id
        finished_now = same and self.job.state != "completed" and job.state == "completed"
        self.job = job
        self.details.show_job(job)
        if same and not finished_now:
            return
        self.stop_player()
        self.timeline.clear()
        self.play_button.setEnabled(False)
        self.export_button.setEnabled(False)
        if job is None:
            self.video_view.set_message("Select a finished job to watch it here.")
            return
        if job.state == "completed" and job.output and Path(job.output).is_file():
            self.video_view.set_message("Loading…")
            self.player().setSource(QUrl.fromLocalFile(job.output))
            self.play_button.setEnabled(True)
            self.export_button.setEnabled(True)
        elif job.state == "running":
            self.video_view.set_message("Working… the preview appears after the first steps.")
        elif job.state == "queued":
            self.video_view.set_message("Waiting in the queue.")
        elif job.state == "completed":
            self.video_view.set_message("The video of this job is no longer where it was saved.")
        else:
            self.video_view.set_message({"failed": "This job failed; it has no video.", "cancelled": "This job was cancelled; it has no video.", "interrupted": "This job was interrupted; resume or retry it."}.get(job.state, "No video yet."))
        self.timeline.frames_hint = FRAMES_HINTS.get(job.state, "")
        self._load_timeline(job)

    def _load_timeline(self, job: Job) -> None:
        job_id = job.id
        video = job.output if job.state == "completed" else None
        request, cache = dict(job.request), self._cache_dir

        def done(data: TimelineData) -> None:
            if self.job is None or self.job.id != job_id:
                return
            lanes = [Lane(f"Voice {i + 1}", speaker_color(i), v.peaks, v.offset_s, v.duration_s)
                     for i, v in enumerate(data.voices)]
            if self.timeline.duration() <= 0:
                self.timeline.set_duration(int(data.duration_s * 1000))
            self.timeline.set_lanes(lanes)
            self.timeline.set_thumbnails([rgb_to_qimage(f) for f in data.thumbnails])
            if data.thumbnails and self.video_view.image() is None and video:
                self.video_view.set_image(rgb_to_qimage(data.thumbnails[0]))
            self.time_label.setText(f"{_clock(self.timeline.position())} / {_clock(self.timeline.duration())}")
            self.timeline_loaded.emit()

        def failed(err: BaseException) -> None:
            if self.job is not None and self.job.id == job_id:
                self.details.info.setText(self.details.info.text() + f"<br>Timeline unavailable: {err}")

        self._pool.submit(lambda: load_timeline_data(request, video, cache), done, failed)

    def on_progress(self, job_id: str, event: ProgressEvent) -> None:
        """While the shown job runs: its latest preview image (when the engine sends one) and
        what it is doing."""
        if self.job is None or self.job.id != job_id:
            return
        text = running_text({"phase": event.phase, "clip": event.clip, "clips": event.clips,
                             "step": event.step, "steps": event.steps, "eta_seconds": event.eta_s})
        if event.preview_png:
            image = QImage.fromData(event.preview_png)
            if not image.isNull():
                self.video_view.set_image(image, badge=text)
                return
        if self.video_view.image() is None:
            self.video_view.set_message(text)
