"""Finished clips kept in the job's folder, so an interrupted job resumes after its last finished
clip instead of starting again.

Layout under `<work_dir>/clips/`: `plan.json` (a fingerprint of everything that decides the frames:
inputs' hashes, settings, frame size, models), `clip_NNNN.npz` (the clip's new frames, uint8
[n, H, W, 3]) and `motion.npz` (what the next clip starts from: the last motion frames, float16,
and the index of the clip they belong to). Every file is written to a temporary name and renamed,
so a kill leaves either the old state or the new one. A fingerprint mismatch (different inputs or
settings) discards the old clips.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

CLIPS_DIR = "clips"


def file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def fingerprint(parts: dict) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


class ClipStore:
    def __init__(self, work_dir: Path, fingerprint_value: str) -> None:
        self.dir = Path(work_dir) / CLIPS_DIR
        self.fingerprint = fingerprint_value

    # -------------------------------------------------------------- opening

    def open(self) -> int:
        """Prepare the folder; returns how many leading clips are finished and reusable."""
        plan_file = self.dir / "plan.json"
        if self.dir.exists():
            try:
                same = json.loads(plan_file.read_text("utf-8")).get("fingerprint") == self.fingerprint
            except (OSError, ValueError):
                same = False
            if not same:
                shutil.rmtree(self.dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        if not plan_file.exists():
            self._write_bytes(plan_file, json.dumps({"fingerprint": self.fingerprint}).encode())
        done = 0
        while (self.dir / self.clip_name(done)).exists():
            done += 1
        motion_clip = self.motion_clip()
        if done and motion_clip != done - 1:
            # The motion state belongs to another clip (killed between the two writes): the last
            # clip is redone.
            if motion_clip is not None and motion_clip < done - 1:
                for k in range(motion_clip + 1, done):
                    (self.dir / self.clip_name(k)).unlink(missing_ok=True)
                done = motion_clip + 1
            else:
                done = 0
        return done

    @staticmethod
    def clip_name(index: int) -> str:
        return f"clip_{index:04d}.npz"

    # -------------------------------------------------------------- writing

    def save_clip(self, index: int, frames_u8: np.ndarray, motion: np.ndarray) -> None:
        """The clip's frames, then the state to continue from (written second: a clip counts as
        finished only with its motion state, see open())."""
        self._write_npz(self.dir / self.clip_name(index), frames=frames_u8)
        self._write_npz(self.dir / "motion.npz", motion=motion.astype(np.float16), clip=np.array(index))

    def _write_npz(self, path: Path, **arrays) -> None:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=self.dir)
        try:
            with os.fdopen(fd, "wb") as fh:
                np.savez(fh, **arrays)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def _write_bytes(self, path: Path, data: bytes) -> None:
        from multitalk_desktop.config import atomic_write_bytes

        atomic_write_bytes(path, data)

    # -------------------------------------------------------------- reading

    def motion_clip(self) -> int | None:
        try:
            with np.load(self.dir / "motion.npz") as data:
                return int(data["clip"])
        except (OSError, ValueError, KeyError):
            return None

    def load_motion(self) -> np.ndarray:
        with np.load(self.dir / "motion.npz") as data:
            return data["motion"]

    def load_frames(self, index: int) -> np.ndarray:
        with np.load(self.dir / self.clip_name(index)) as data:
            return data["frames"]

    def clear(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)
