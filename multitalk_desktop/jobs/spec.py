"""What a job asks for (`JobRequest`), its defaults (CLI.md), and validation that reports every
problem at once, each with its field and a sentence a creator understands.

`generate` and `submit` share the request flags through `add_request_arguments` and
`request_from_args`; the GUI and the HTTP API build a `JobRequest` directly.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import secrets
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

# The one conversion between the official [top, left, bottom, right] and our x0,y0,x1,y1 lives
# with the mask code (torch-free at import); re-exported here for the request parser.
from multitalk_desktop.engine.masks import official_bbox_to_box  # noqa: E402,F401
from multitalk_desktop.errors import MultiTalkError, ValidationFailed

# The streaming loop's geometry (official MultiTalk): 25 fps, 81-frame clips, the last 25 frames of
# a clip condition the next, so every clip after the first adds 56 new frames.
FPS = 25
CLIP_FRAMES = 81
MOTION_FRAMES = 25
ONE_CLIP_S = CLIP_FRAMES / FPS  # 3.24 s
MIN_VOICE_S = 0.4  # below this there is not one syllable for the mouth to follow

AUDIO_TYPES = ("add", "para")
MODES = ("quality", "fast")
PRESET_RESOLUTIONS = ("480p", "720p")
MODEL_720P_FOLDER = "Wan2.1-I2V-14B-720P-Diffusers"
IMAGE_FORMATS = ("PNG", "JPEG", "MPO", "WEBP")  # MPO: a camera JPEG with extra pictures
MIN_IMAGE_SIDE = 32
MAX_IMAGE_SIDE = 16384
MAX_IMAGE_PIXELS = 64_000_000
MAX_VOICES = 2
DEFAULT_PROMPT = "A person is talking, with natural facial expressions and gentle head movements."

# mode -> (steps, text guidance, audio guidance)
MODE_DEFAULTS = {"quality": (40, 5.0, 4.0), "fast": (8, 1.0, 2.0)}

Box = tuple[int, int, int, int]


@dataclass
class JobRequest:
    """A request as the user gave it. `None` means "the default" (see `resolved`)."""

    image: str = ""
    audio: list[str] = field(default_factory=list)
    boxes: list[Box] | None = None  # x0,y0,x1,y1 per voice, source-image pixels
    prompt: str | None = None
    audio_type: str = "add"
    resolution: str = "480p"
    mode: str = "quality"
    steps: int | None = None
    seed: int | None = None
    text_guidance: float | None = None
    audio_guidance: float | None = None
    color_correction: float = 1.0
    max_duration: float | None = None

    def resolved(self) -> JobRequest:
        """A copy with every default filled in, the random seed drawn (so it can be recorded)."""
        steps, text_g, audio_g = MODE_DEFAULTS.get(self.mode, MODE_DEFAULTS["quality"])
        return replace(
            self,
            audio=list(self.audio),
            boxes=[tuple(b) for b in self.boxes] if self.boxes is not None else None,
            prompt=DEFAULT_PROMPT if self.prompt is None or not self.prompt.strip() else self.prompt,
            steps=steps if self.steps is None else self.steps,
            seed=secrets.randbelow(2**31) if self.seed is None else self.seed,
            text_guidance=text_g if self.text_guidance is None else self.text_guidance,
            audio_guidance=audio_g if self.audio_guidance is None else self.audio_guidance,
        )

    def to_dict(self) -> dict:
        d = asdict(self)
        d["boxes"] = [list(b) for b in self.boxes] if self.boxes is not None else None
        return d

    @classmethod
    def from_dict(cls, data: dict) -> JobRequest:
        known = {f.name for f in fields(cls)}
        d = {k: v for k, v in data.items() if k in known}
        if d.get("boxes") is not None:
            d["boxes"] = [tuple(int(v) for v in b) for b in d["boxes"]]
        if isinstance(d.get("audio"), str):
            d["audio"] = [d["audio"]]
        return cls(**d)


@dataclass(frozen=True)
class Problem:
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


@dataclass
class Report:
    errors: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    duration_s: float = 0.0  # seconds of video the job will make
    clips: int = 0
    frames: int = 0
    image_size: tuple[int, int] | None = None  # (width, height)
    voice_durations: list[float] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors

    def error(self, fld: str, message: str) -> None:
        self.errors.append(Problem(fld, message))

    def warn(self, fld: str, message: str) -> None:
        self.warnings.append(Problem(fld, message))

    def raise_if_invalid(self) -> None:
        if self.errors:
            raise ValidationFailed([(p.field, p.message) for p in self.errors])

    def to_dict(self) -> dict:
        return {
            "ok": self.ok,
            "errors": [asdict(p) for p in self.errors],
            "warnings": [asdict(p) for p in self.warnings],
            "duration_s": self.duration_s,
            "clips": self.clips,
            "frames": self.frames,
        }


def clips_for_frames(frames: int) -> int:
    """How many 81-frame clips the streaming loop runs to cover `frames` video frames."""
    if frames <= CLIP_FRAMES:
        return 1
    return 1 + math.ceil((frames - CLIP_FRAMES) / (CLIP_FRAMES - MOTION_FRAMES))


def parse_resolution(text: str) -> tuple[int, int] | None:
    """`WxH` -> (width, height); None for the presets. Raises ValueError for anything else."""
    if text in PRESET_RESOLUTIONS:
        return None
    m = re.fullmatch(r"(\d+)x(\d+)", text or "")
    if not m:
        raise ValueError(text)
    return int(m.group(1)), int(m.group(2))


def default_boxes(width: int, height: int, voices: int, margin: float = 0.05) -> list[Box]:
    """Person 1 in the left half, person 2 in the right half, with the official 5% margins."""
    y0, y1 = int(height * margin), int(height * (1 - margin))
    if voices <= 1:
        return [(int(width * margin), y0, int(width * (1 - margin)), y1)]
    half = width // 2
    left = (int(half * margin), y0, int(half * (1 - margin)), y1)
    right = (half + int(half * margin), y0, half + int(half * (1 - margin)), y1)
    return [left, right]


# ---------------------------------------------------------------------------------- validation


def validate(req: JobRequest, models_dir: str | Path | None = None) -> Report:
    """Every error and warning at once. `models_dir` enables the checks that need the models
    folder (720p needs its own base model)."""
    report = Report()
    r = req.resolved()
    _check_image(r, report)
    _check_voices(r, report)
    _check_boxes(r, report)
    _check_prompt(r, report)
    _check_numbers(r, report)
    _check_choices(r, report, models_dir)
    return report


def _check_file(path_text: str, fld: str, what: str, report: Report) -> Path | None:
    if not path_text:
        report.error(fld, f"Choose {what}.")
        return None
    path = Path(path_text).expanduser()
    if not path.exists():
        report.error(fld, f"{path} does not exist (was it moved or renamed?).")
        return None
    if not path.is_file():
        report.error(fld, f"{path} is a folder, not a file.")
        return None
    if path.stat().st_size == 0:
        report.error(fld, f"{path.name} is empty (0 bytes).")
        return None
    return path


def _check_image(r: JobRequest, report: Report) -> None:
    from multitalk_desktop.jobs.probe import probe_image

    path = _check_file(r.image, "image", "a portrait image (PNG, JPEG or WebP)", report)
    if path is None:
        return
    try:
        info = probe_image(path)
    except MultiTalkError as err:
        report.error("image", err.user_text())
        return
    if info.format not in IMAGE_FORMATS:
        report.error("image", f"{path.name} is a {info.format or 'unknown'} image; use PNG, JPEG or WebP.")
        return
    w, h = info.width, info.height
    if w < MIN_IMAGE_SIDE or h < MIN_IMAGE_SIDE:
        report.error("image", f"{path.name} is only {w}x{h} pixels; use a picture at least "
                     f"{MIN_IMAGE_SIDE}x{MIN_IMAGE_SIDE} (ideally 480 pixels or more on the short side).")
        return
    if max(w, h) > MAX_IMAGE_SIDE or w * h > MAX_IMAGE_PIXELS:
        report.error("image", f"{path.name} says it is {w}x{h} pixels, far larger than needed; "
                     f"scale it down below {MAX_IMAGE_SIDE} pixels a side.")
        return
    report.image_size = (w, h)


def _check_voices(r: JobRequest, report: Report) -> None:
    from multitalk_desktop.jobs.probe import probe_audio

    if not r.audio:
        report.error("audio", "Add a voice recording (one per person, at most two).")
        return
    if len(r.audio) > MAX_VOICES:
        report.error("audio", f"{len(r.audio)} voices were given; MultiTalk drives at most two people, "
                     "so give one or two voices.")
        return
    durations: list[float] = []
    for k, path_text in enumerate(r.audio, start=1):
        fld = f"audio[{k}]"
        path = _check_file(path_text, fld, f"voice {k}", report)
        if path is None:
            continue
        try:
            info = probe_audio(path)
        except MultiTalkError as err:
            report.error(fld, err.user_text())
            continue
        if info.duration_s <= 0:
            report.error(fld, f"{path.name} has no audio in it.")
            continue
        if info.duration_s < MIN_VOICE_S:
            report.error(fld, f"{path.name} lasts only {info.duration_s:.2f} s; a voice needs at least "
                         f"{MIN_VOICE_S} s of speech.")
            continue
        durations.append(info.duration_s)
    report.voice_durations = durations
    if len(durations) != len(r.audio):
        return
    if r.audio_type == "para" and len(durations) == 2 and abs(durations[0] - durations[1]) > 0.05:
        short = 1 if durations[0] < durations[1] else 2
        report.warn("audio", f"In 'para' mode both voices play at once; voice {short} is shorter and "
                    "will be padded with silence to the length of the other.")
    total = sum(durations) if r.audio_type == "add" else max(durations)
    if total < ONE_CLIP_S:
        report.warn("audio", f"The voice lasts {total:.2f} s, shorter than one clip ({ONE_CLIP_S:.2f} s); "
                    f"it will be padded with silence to {ONE_CLIP_S:.2f} s.")
    if r.max_duration is not None and isinstance(r.max_duration, (int, float)) and 0 < r.max_duration < total:
        report.warn("max_duration", f"The voices last {total:.1f} s; the video will stop at "
                    f"{r.max_duration:g} s as asked.")
        total = float(r.max_duration)
    frames = max(CLIP_FRAMES, int(round(total * FPS)))
    report.duration_s = frames / FPS
    report.frames = frames
    report.clips = clips_for_frames(frames)


def _check_boxes(r: JobRequest, report: Report) -> None:
    if r.boxes is None:
        return
    voices = len(r.audio)
    if voices and len(r.boxes) != voices:
        report.error("boxes", f"{voices} voice(s) but {len(r.boxes)} box(es): draw one box per voice "
                     "(box 1 is the person voice 1 drives), or none for the default left/right halves.")
    size = report.image_size
    valid: list[tuple[int, Box]] = []
    for k, box in enumerate(r.boxes, start=1):
        fld = f"boxes[{k}]"
        try:
            x0, y0, x1, y1 = (int(v) for v in box)
        except (TypeError, ValueError):
            report.error(fld, "A box needs four whole numbers x0,y0,x1,y1.")
            continue
        if x1 <= x0 or y1 <= y0:
            report.error(fld, f"Box {k} ({x0},{y0},{x1},{y1}) has no area; x1 must be right of x0 and "
                         "y1 below y0.")
            continue
        if size is not None:
            w, h = size
            if x0 < 0 or y0 < 0 or x1 > w or y1 > h:
                report.error(fld, f"Box {k} ({x0},{y0},{x1},{y1}) reaches outside the {w}x{h} image.")
                continue
        valid.append((k, (x0, y0, x1, y1)))
    for i, (ka, a) in enumerate(valid):
        for kb, b in valid[i + 1:]:
            if min(a[2], b[2]) > max(a[0], b[0]) and min(a[3], b[3]) > max(a[1], b[1]):
                report.warn("boxes", f"Boxes {ka} and {kb} overlap; where they overlap both voices "
                            "move the face, which can look odd.")


def _check_prompt(r: JobRequest, report: Report) -> None:
    prompt = r.prompt or ""
    try:
        prompt.encode("utf-8")
    except UnicodeEncodeError:
        report.error("prompt", "The prompt contains bytes that are not valid UTF-8 text; retype it or "
                     "save the file as UTF-8.")
        return
    if len(prompt) > 4000:
        report.error("prompt", f"The prompt is {len(prompt)} characters long; keep it under 4000.")


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _check_numbers(r: JobRequest, report: Report) -> None:
    if not isinstance(r.steps, int) or isinstance(r.steps, bool) or not 1 <= r.steps <= 100:
        report.error("steps", f"Steps must be a whole number from 1 to 100 (got {r.steps}).")
    if not isinstance(r.seed, int) or isinstance(r.seed, bool) or not 0 <= r.seed < 2**32:
        report.error("seed", f"The seed must be a whole number from 0 to {2**32 - 1} (got {r.seed}).")
    for name, label in (("text_guidance", "Text guidance"), ("audio_guidance", "Audio guidance")):
        value = getattr(r, name)
        if not _is_number(value):
            report.error(name, f"{label} must be a number from 0 to 20 (got {value}).")
        elif not 0 <= value <= 20:
            report.error(name, f"{label} must be from 0 to 20 (got {value:g}).")
    if not _is_number(r.color_correction) or not 0 <= r.color_correction <= 1:
        report.error("color_correction", f"Colour correction must be from 0 to 1 (got {r.color_correction}).")
    if r.max_duration is not None and (not _is_number(r.max_duration) or r.max_duration <= 0):
        report.error("max_duration", f"The maximum duration must be a positive number of seconds "
                     f"(got {r.max_duration}).")


def _check_choices(r: JobRequest, report: Report, models_dir: str | Path | None) -> None:
    if r.audio_type not in AUDIO_TYPES:
        report.error("audio_type", f"Audio type must be 'add' (speakers take turns) or 'para' (they "
                     f"speak at once), not {r.audio_type!r}.")
    if r.mode not in MODES:
        report.error("mode", f"Mode must be 'quality' or 'fast', not {r.mode!r}.")
    try:
        size = parse_resolution(r.resolution)
    except ValueError:
        report.error("resolution", f"Resolution must be 480p, 720p or WxH such as 832x480, not "
                     f"{r.resolution!r}.")
        return
    if size is not None:
        w, h = size
        if w % 16 or h % 16 or not (16 <= w <= 2048 and 16 <= h <= 2048):
            report.error("resolution", f"A forced size must be multiples of 16 between 16 and 2048 "
                         f"(got {w}x{h}).")
    if r.resolution == "720p" and models_dir is not None:
        if not (Path(models_dir) / MODEL_720P_FOLDER).is_dir():
            report.error("resolution", f"720p needs the 720P base model ({MODEL_720P_FOLDER}) in the "
                         f"models folder {models_dir}; download it there or choose 480p.")


# ------------------------------------------------------------------------------ the CLI flags


def _box_arg(text: str) -> Box:
    parts = [p.strip() for p in text.split(",")]
    if len(parts) != 4:
        raise argparse.ArgumentTypeError(f"a box is x0,y0,x1,y1 (four numbers), got {text!r}")
    try:
        return tuple(int(round(float(p))) for p in parts)  # type: ignore[return-value]
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"a box is x0,y0,x1,y1 (four numbers), got {text!r}") from err


def _float_arg(text: str) -> float:
    # float() accepts "nan"; validation then reports it with its field, as for any other value.
    try:
        return float(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from err


def add_request_arguments(parser: argparse.ArgumentParser) -> None:
    """The REQUEST flags of CLI.md. Defaults stay None so `--request` values are kept unless a
    flag overrides them."""
    g = parser.add_argument_group("request")
    g.add_argument("--image", metavar="PATH", help="portrait, PNG/JPEG/WebP (required)")
    g.add_argument("--audio", metavar="PATH", action="append",
                   help="voice (audio file or a video's audio track); once or twice: voice k drives person k")
    g.add_argument("--box", metavar="x0,y0,x1,y1", action="append", type=_box_arg,
                   help="once per voice, in source-image pixels, columns first (x = column); "
                   "default: person 1 the left half, person 2 the right half (official margins)")
    g.add_argument("--prompt", metavar="TEXT", help="scene description (default: a neutral sentence)")
    g.add_argument("--audio-type", choices=AUDIO_TYPES, default=None,
                   help="add: speakers take turns (default); para: they speak at once")
    g.add_argument("--resolution", metavar="480p|720p|WxH", default=None, help="default 480p")
    g.add_argument("--mode", choices=MODES, default=None, help="fast = step-distilled LoRA (default quality)")
    g.add_argument("--steps", type=int, metavar="N", help="denoising steps 1-100 (40 quality, 8 fast)")
    g.add_argument("--seed", type=int, metavar="N", help="default random (recorded with the job)")
    g.add_argument("--text-guidance", type=_float_arg, metavar="F", help="0-20 (5 quality, 1 fast)")
    g.add_argument("--audio-guidance", type=_float_arg, metavar="F", help="0-20 (4 quality, 2 fast)")
    g.add_argument("--color-correction", type=_float_arg, metavar="F", help="0-1 (default 1.0)")
    g.add_argument("--max-duration", type=_float_arg, metavar="S", help="cap on output seconds")
    g.add_argument("--request", metavar="FILE.json", help="a request in the official MultiTalk example format (prompt, cond_image, "
                   "cond_audio.person1/2, audio_type, bbox as [top, left, bottom, right]); "
                   "flags given as well override it")


def request_from_args(args: argparse.Namespace) -> JobRequest:
    """Flags override what `--request FILE.json` says."""
    req = request_from_official_json(args.request) if getattr(args, "request", None) else JobRequest()
    if args.image is not None:
        req.image = args.image
    if args.audio:
        req.audio = list(args.audio)
    if args.box:
        req.boxes = list(args.box)
    overrides = {
        "prompt": args.prompt,
        "audio_type": args.audio_type,
        "resolution": args.resolution,
        "mode": args.mode,
        "steps": args.steps,
        "seed": args.seed,
        "text_guidance": args.text_guidance,
        "audio_guidance": args.audio_guidance,
        "color_correction": args.color_correction,
        "max_duration": args.max_duration,
    }
    for name, value in overrides.items():
        if value is not None:
            setattr(req, name, value)
    return req


def request_from_official_json(path: str | Path) -> JobRequest:
    """The official example format: prompt, cond_image, cond_audio.person1/2, audio_type, bbox.
    Relative file paths are relative to the JSON file's folder."""
    path = Path(path).expanduser()
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise ValidationFailed([("request", f"{path} cannot be read ({err.strerror or err}).")]) from err
    # surrogateescape keeps non-UTF-8 bytes visible to validation, which names the field.
    try:
        data = json.loads(raw.decode("utf-8", errors="surrogateescape"))
    except json.JSONDecodeError as err:
        raise ValidationFailed([("request", f"{path.name} is not valid JSON ({err.msg} at line "
                                 f"{err.lineno}).")]) from err
    if not isinstance(data, dict):
        raise ValidationFailed([("request", f"{path.name} must hold a JSON object.")])
    base = path.parent

    def local(p: object) -> str:
        text = str(p)
        return text if Path(text).expanduser().is_absolute() else str(base / text)

    req = JobRequest()
    if data.get("cond_image"):
        req.image = local(data["cond_image"])
    cond_audio = data.get("cond_audio") or {}
    if isinstance(cond_audio, dict):
        keys = sorted((k for k in cond_audio if re.fullmatch(r"person\d+", k)), key=lambda k: int(k[6:]))
        req.audio = [local(cond_audio[k]) for k in keys]
    elif isinstance(cond_audio, (list, str)):
        req.audio = [local(a) for a in ([cond_audio] if isinstance(cond_audio, str) else cond_audio)]
    if data.get("prompt") is not None:
        req.prompt = str(data["prompt"])
    if data.get("audio_type"):
        req.audio_type = str(data["audio_type"])
    bbox = data.get("bbox")
    if bbox:
        problems = []
        items = [bbox[k] for k in sorted(bbox, key=lambda k: int(re.sub(r"\D", "", k) or 0))] \
            if isinstance(bbox, dict) else list(bbox)
        boxes = []
        for k, b in enumerate(items, start=1):
            try:
                boxes.append(official_bbox_to_box(b))
            except (TypeError, ValueError) as err:
                problems.append((f"boxes[{k}]", f"bbox {k} in {path.name}: {err}."))
        if problems:
            raise ValidationFailed(problems)
        req.boxes = boxes
    return req
