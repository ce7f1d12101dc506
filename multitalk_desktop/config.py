"""Settings and paths, in one place.

With `MULTITALK_DESKTOP_HOME` set, everything lives under that one root (tests, benchmarks and
scripts isolate themselves this way); otherwise the platformdirs locations are used. The layout
under a root is the one in CLI.md: config.toml, jobs.sqlite3, jobs/<id>/, outputs/, models/, logs/.
"""

from __future__ import annotations

import os
import sys
import tempfile
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

APP_NAME = "MultiTalkDesktop"
HOME_ENV = "MULTITALK_DESKTOP_HOME"
PROFILES = ("auto", "full", "fp8", "balanced", "low")
DEVICES = ("auto", "cuda", "cpu")


@dataclass(frozen=True)
class Paths:
    config_dir: Path
    data_dir: Path
    config_file: Path
    database: Path
    jobs_dir: Path
    outputs_dir: Path
    models_dir: Path
    logs_dir: Path

    def job_dir(self, job_id: str) -> Path:
        return self.jobs_dir / job_id

    def ensure(self) -> Paths:
        for d in (self.config_dir, self.data_dir, self.jobs_dir, self.outputs_dir, self.logs_dir):
            d.mkdir(parents=True, exist_ok=True)
        return self


def default_paths() -> Paths:
    """Where things live before settings move the models or outputs folder elsewhere."""
    root = os.environ.get(HOME_ENV)
    if root:
        base = Path(root).expanduser().resolve()
        config_dir = data_dir = base
        logs_dir = base / "logs"
    else:
        import platformdirs

        config_dir = Path(platformdirs.user_config_dir(APP_NAME, appauthor=False))
        data_dir = Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))
        logs_dir = Path(platformdirs.user_log_dir(APP_NAME, appauthor=False))
    return Paths(
        config_dir=config_dir,
        data_dir=data_dir,
        config_file=config_dir / "config.toml",
        database=data_dir / "jobs.sqlite3",
        jobs_dir=data_dir / "jobs",
        outputs_dir=data_dir / "outputs",
        models_dir=data_dir / "models",
        logs_dir=logs_dir,
    )


@dataclass
class Settings:
    """What the user can change (the window's settings page, config.toml)."""

    models_dir: str = ""  # empty: the default under the data folder
    outputs_dir: str = ""  # empty: the default under the data folder
    profile: str = "auto"
    device: str = "auto"
    compile_blocks: bool = False  # compiled transformer blocks (CUDA only; the first job is slower)
    max_frames: int = 0  # 0: no cap (the official code capped at 1000 frames)
    keep_last_jobs: int = 0  # retention; 0 keeps all
    keep_days: int = 0  # retention; 0 keeps all
    api_enabled: bool = False
    api_host: str = "127.0.0.1"
    api_port: int = 8765
    api_allowed_dirs: list[str] = field(default_factory=list)
    api_allow_private_webhooks: bool = False
    notify_when_done: bool = True
    linked_model_dirs: dict[str, str] = field(default_factory=dict)

    @classmethod
    def load(cls, paths: Paths | None = None) -> Settings:
        paths = paths or default_paths()
        try:
            raw = tomllib.loads(paths.config_file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return cls()
        except (OSError, tomllib.TOMLDecodeError):
            # A damaged settings file must not stop the app from opening; defaults apply.
            return cls()
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in raw.items() if k in known})

    def save(self, paths: Paths | None = None) -> None:
        import tomli_w

        paths = paths or default_paths()
        paths.config_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(paths.config_file, tomli_w.dumps(asdict(self)).encode("utf-8"))


@dataclass(frozen=True)
class AppContext:
    """Paths resolved against settings: what every layer above config needs."""

    paths: Paths
    settings: Settings

    @property
    def models_dir(self) -> Path:
        return Path(self.settings.models_dir).expanduser() if self.settings.models_dir else self.paths.models_dir

    @property
    def outputs_dir(self) -> Path:
        return Path(self.settings.outputs_dir).expanduser() if self.settings.outputs_dir else self.paths.outputs_dir


def load_context() -> AppContext:
    paths = default_paths().ensure()
    return AppContext(paths=paths, settings=Settings.load(paths))


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temporary file beside `path`, fsync it, rename it into place, fsync the folder,
    so a crash leaves either the old file or the new one, never half of one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    fsync_dir(path.parent)


def fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # Windows cannot open folders; renames there are durable enough
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
