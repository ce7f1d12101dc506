"""PyInstaller build of MultiTalk Desktop as one folder (onedir): `python build_spec.py`.

This file is both the launcher and the spec. Run with plain Python it copies itself to
build/multitalk-desktop.spec, runs PyInstaller on that copy, trims and strips the result and prints
the bundle's size. Executed by PyInstaller (the names Analysis, EXE, COLLECT, SPEC are defined) it
describes the bundle:

  dist/multitalk-desktop/
    multitalk-desktop[.exe]       console entry: the `multitalk-desktop` command (no args: window)
    multitalk-desktop-gui[.exe]   windowed entry: the window (files given go into the job form).
                                  On Windows a second, windowed .exe (no console window); on
                                  Linux a symlink to the first (there is no console/windowed
                                  distinction there, and a second executable would carry another
                                  ~90 MB copy of the Python archive)
    _internal/                    Python, torch, Qt, ffmpeg, resources/, multitalk_desktop/data

No model weights are bundled: they are downloaded (or linked) at first run into the user's data
folder. The layout is what installers/linux/build_deb.sh and installers/windows/*.iss package.

Options (environment): MULTITALK_BUNDLE_DIST (default dist), MULTITALK_BUNDLE_WORK (default
build/pyinstaller), MULTITALK_BUNDLE_NO_STRIP=1 (keep symbols), MULTITALK_BUNDLE_CLEAN=1 (no cache).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

APP_DIR_NAME = "multitalk-desktop"
CLI_NAME = "multitalk-desktop"
GUI_NAME = "multitalk-desktop-gui"
REPO_ENV = "MULTITALK_BUNDLE_REPO"

# Left out of the bundle (paths inside _internal, '/'-separated, matched as prefixes). What each
# costs and why it is safe to drop: ../shared/docs/platform-notes.md ("Packaging").
EXCLUDED_PREFIXES = (
    "torch/test/",  # 82 MB of C++ test binaries
    "torch/include/",
    "torch/share/cmake/",
    "PySide6/Qt/translations/",  # the app's text is English only
    "PySide6/translations/",
    "PySide6/Qt/qml/",  # no QML in the app (libQt6Quick/Qml themselves stay: multimedia links them)
    "PySide6/Qt/resources/qtwebengine",
    "PySide6/Qt/libexec/QtWebEngineProcess",
)
# Qt plugin folders the app never loads. Kept: platforms (xcb, wayland, offscreen, windows),
# imageformats, iconengines, multimedia, platformthemes, platforminputcontexts, xcbglintegrations,
# wayland-*, styles, tls, networkinformation, generic, egldeviceintegrations.
UNUSED_QT_PLUGINS = (
    "assetimporters", "canbus", "designer", "geometryloaders", "geoservices", "position",
    "qmltooling", "renderers", "renderplugins", "sceneparsers", "scxmldatamodel", "sensors",
    "sqldrivers", "texttospeech", "webview", "wayland-graphics-integration-server",
    "vectorimageformats", "printsupport",
)
# torch/bin (Linux) holds test programs and protoc; only torch_shm_manager is used by `import torch`.
KEPT_TORCH_BIN = ("torch_shm_manager",)
# Modules never used by the app that hooks or optional imports would otherwise drag in.
EXCLUDED_MODULES = [
    "tkinter", "_tkinter", "IPython", "matplotlib", "pytest", "_pytest", "pytestqt", "hypothesis",
    # (not torch.testing._internal: torch.utils.checkpoint imports it when torch loads)
    "schemathesis", "PyInstaller", "ruff", "importlinter", "grimp",
    "PySide6.QtWebEngineCore", "PySide6.QtWebEngineWidgets", "PySide6.QtWebEngineQuick",
    "PySide6.QtWebChannel", "PySide6.QtWebView", "PySide6.Qt3DCore", "PySide6.Qt3DRender",
    "PySide6.QtCharts", "PySide6.QtDataVisualization", "PySide6.QtGraphs", "PySide6.QtQuick3D",
    "PySide6.QtPdf", "PySide6.QtPdfWidgets", "PySide6.QtDesigner", "PySide6.QtBluetooth",
    "PySide6.QtNfc", "PySide6.QtSensors", "PySide6.QtSerialPort", "PySide6.QtPositioning",
    "PySide6.QtLocation", "PySide6.QtRemoteObjects", "PySide6.QtScxml", "PySide6.QtSql",
    "PySide6.QtTextToSpeech", "PySide6.QtHttpServer", "PySide6.QtTest",
]
# Distributions whose metadata is read at run time (version checks at import): diffusers checks
# requests; transformers checks its dependency table; `--version` reads multitalk-desktop's own.
METADATA_PACKAGES = [
    "multitalk-desktop", "requests", "diffusers", "transformers", "huggingface_hub", "tokenizers",
    "safetensors", "accelerate", "torch", "numpy", "tqdm", "regex", "filelock", "packaging",
    "pyyaml", "pillow", "imageio-ffmpeg", "sentencepiece", "librosa", "soundfile", "fastapi",
    "uvicorn", "starlette", "pydantic", "httpx", "platformdirs", "psutil", "importlib_metadata",
]
# Data files that packages read at run time and no PyInstaller hook collects: (package, patterns).
PACKAGE_DATA = [
    ("sentencepiece", ["package_data/*.bin"]),  # normalisation tables the T5 tokenizer loads
    ("diffusers", ["**/*.md", "**/*.json"]),
]
# Shared libraries worth stripping: the two biggest; stripping every .so breaks numpy's OpenBLAS.
STRIPPED_LIBRARIES = ("torch/lib/libtorch_cpu.so", "torch/lib/libtorch_python.so")


def bundle_layout(platform: str = sys.platform) -> list[str]:
    """The top of dist/multitalk-desktop that installers rely on ('/' ends a folder)."""
    exe = ".exe" if platform == "win32" else ""
    return [f"{CLI_NAME}{exe}", f"{GUI_NAME}{exe}", "_internal/", "_internal/resources/",
            "_internal/multitalk_desktop/data/"]


def repo_root() -> Path:
    if os.environ.get(REPO_ENV):
        return Path(os.environ[REPO_ENV]).resolve()
    return Path(__file__).resolve().parent


def is_excluded(dest: str) -> bool:
    """True for a bundle path (relative to _internal) that the app does not need."""
    path = dest.replace("\\", "/")
    if any(path.startswith(p) for p in EXCLUDED_PREFIXES):
        return True
    if path.startswith("torch/bin/") and sys.platform != "win32":  # Windows keeps DLLs there
        return Path(path).name not in KEPT_TORCH_BIN
    if path.startswith("PySide6/Qt/plugins/"):
        return path.split("/")[3] in UNUSED_QT_PLUGINS
    name = Path(path).name
    return "WebEngine" in name or "Qt6Pdf" in name or name.startswith("libQt63D")


# --------------------------------------------------------------------------------------------
# Spec part: runs inside PyInstaller (which defines Analysis, PYZ, EXE, COLLECT and SPEC).
# --------------------------------------------------------------------------------------------
def build_with_pyinstaller(ns: dict) -> None:
    from PyInstaller.utils.hooks import collect_data_files, collect_submodules, copy_metadata

    root = repo_root()
    installers = root / "installers"
    datas = [(str(root / "resources"), "resources")]
    datas += collect_data_files("multitalk_desktop", excludes=["**/__pycache__/**"])
    for package, patterns in PACKAGE_DATA:
        datas += collect_data_files(package, includes=patterns)
    for dist in METADATA_PACKAGES:
        try:
            datas += copy_metadata(dist)
        except Exception as err:  # an optional package not installed here
            print(f"build_spec: no metadata for {dist} ({err})")
    hidden = collect_submodules("multitalk_desktop")  # commands load by name (cli.COMMANDS)

    a = ns["Analysis"](
        [str(installers / "entry.py")],
        pathex=[str(root)],
        datas=datas,
        hiddenimports=hidden,
        excludes=EXCLUDED_MODULES,
        noarchive=False,
    )
    a.datas = [entry for entry in a.datas if not is_excluded(entry[0])]
    a.binaries = [entry for entry in a.binaries if not is_excluded(entry[0])]
    pyz = ns["PYZ"](a.pure)
    icon = root / "resources" / "icons" / "multitalk-desktop.ico"
    common = dict(
        exclude_binaries=True,
        debug=False,
        strip=False,  # selective strip after the build (see STRIPPED_LIBRARIES)
        upx=False,
        icon=str(icon) if icon.is_file() and sys.platform in ("win32", "darwin") else None,
        contents_directory="_internal",
    )
    executables = [ns["EXE"](pyz, a.scripts, [], name=CLI_NAME, console=True, **common)]
    if sys.platform == "win32":  # entry.py opens the window when its name ends in -gui
        executables.append(ns["EXE"](pyz, a.scripts, [], name=GUI_NAME, console=False, **common))
    ns["COLLECT"](*executables, a.binaries, a.datas, strip=False, upx=False, name=APP_DIR_NAME)


# --------------------------------------------------------------------------------------------
# Launcher part: `python build_spec.py`.
# --------------------------------------------------------------------------------------------
def folder_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink())


def strip_libraries(bundle: Path) -> None:
    import shutil
    import subprocess

    if not sys.platform.startswith("linux") or os.environ.get("MULTITALK_BUNDLE_NO_STRIP"):
        return
    strip = shutil.which("strip")
    if not strip:
        print("build_spec: `strip` not found (binutils); libtorch keeps its symbols")
        return
    for rel in STRIPPED_LIBRARIES:
        lib = bundle / "_internal" / rel
        if lib.is_file():
            before = lib.stat().st_size
            subprocess.run([strip, "--strip-unneeded", str(lib)], check=True)
            print(f"build_spec: stripped {rel}: {before / 1e6:.0f} MB -> {lib.stat().st_size / 1e6:.0f} MB")


def main() -> int:
    import shutil
    import time

    root = repo_root()
    dist = Path(os.environ.get("MULTITALK_BUNDLE_DIST", root / "dist")).resolve()
    work = Path(os.environ.get("MULTITALK_BUNDLE_WORK", root / "build" / "pyinstaller")).resolve()
    work.mkdir(parents=True, exist_ok=True)
    spec = work / "multitalk-desktop.spec"
    shutil.copyfile(Path(__file__).resolve(), spec)
    os.environ[REPO_ENV] = str(root)
    started = time.monotonic()
    import PyInstaller.__main__

    clean = ["--clean"] if os.environ.get("MULTITALK_BUNDLE_CLEAN") else []
    PyInstaller.__main__.run([str(spec), "--noconfirm", *clean, "--log-level", "WARN",
                              "--distpath", str(dist), "--workpath", str(work)])
    bundle = dist / APP_DIR_NAME
    strip_libraries(bundle)
    if sys.platform != "win32":
        gui = bundle / GUI_NAME
        gui.unlink(missing_ok=True)
        gui.symlink_to(CLI_NAME)
    size = folder_size(bundle)
    print(f"build_spec: bundle {bundle} is {size / 1e6:.0f} MB ({size / 2**20:.0f} MiB), "
          f"built in {time.monotonic() - started:.0f} s")
    return 0


if "SPEC" in globals() and "Analysis" in globals():
    build_with_pyinstaller(globals())
elif __name__ == "__main__":
    sys.exit(main())
