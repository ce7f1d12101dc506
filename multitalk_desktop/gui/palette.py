"""Colours with a meaning: each speaker has one colour, used by their box on the image, their
voice slot and their waveform lane, so "who is who" reads at a glance; each job state has one."""

from __future__ import annotations

from PySide6.QtGui import QColor

# Person 1 warm orange, person 2 cyan: distinct for the common colour-vision deficiencies.
SPEAKER_COLORS = ("#ff8a3d", "#3ec7e0")
ERROR_COLOR = "#ff5c5c"
WARNING_COLOR = "#f2c14e"
OK_COLOR = "#5fd38d"
MUTED_TEXT = "#9aa3b2"
ACCENT = "#7c8cff"

STATE_COLORS = {
    "queued": "#8a93a6",
    "running": ACCENT,
    "completed": OK_COLOR,
    "failed": ERROR_COLOR,
    "cancelled": "#b08968",
    "interrupted": WARNING_COLOR,
}


def speaker_color(index: int) -> QColor:
    """Colour of speaker `index` (0-based)."""
    return QColor(SPEAKER_COLORS[index % len(SPEAKER_COLORS)])


def state_color(state: str) -> QColor:
    return QColor(STATE_COLORS.get(state, MUTED_TEXT))
