"""Quick static checks of the packaging files (no build): versions agree, the installers refer
only to what the bundle contains, the desktop entry is valid. `make bundle-test` does the rest."""

from __future__ import annotations

import configparser
import importlib.util
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[2]
ISS = REPO / "installers" / "windows" / "multitalk-desktop.iss"
DESKTOP = REPO / "resources" / "linux" / "multitalk-desktop.desktop"


def load(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def build_spec():
    return load(REPO / "build_spec.py", "build_spec_under_test")


def pyproject_version() -> str:
    try:
        import tomllib
    except ImportError:  # Python 3.10
        import tomli as tomllib

    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]


def iss_defines() -> dict[str, str]:
    return dict(re.findall(r'^#define (\w+) "([^"]*)"', ISS.read_text(), re.M))


def test_inno_version_is_generated_from_pyproject():
    writer = load(REPO / "installers" / "windows" / "write_version.py", "write_version_under_test")
    assert writer.pyproject_version() == pyproject_version()
    assert f'#define AppVersion "{pyproject_version()}"' in writer.version_iss(writer.pyproject_version())
    text = ISS.read_text()
    assert '#include "..\\..\\build\\windows\\version.iss"' in text
    assert "AppVersion={#AppVersion}" in text
    assert not re.search(r"^\s*AppVersion\s*=\s*\d", text, re.M), "the .iss must not hard-code a version"


def test_deb_version_comes_from_pyproject():
    script = (REPO / "installers" / "linux" / "build_deb.sh").read_text()
    sed = re.search(r"version=\$\(sed -n '([^']+)'", script).group(1)
    out = subprocess.run(["sed", "-n", sed, str(REPO / "pyproject.toml")], capture_output=True, text=True)
    assert out.stdout.splitlines()[0] == pyproject_version()


def test_inno_files_and_shortcuts_exist_in_the_windows_bundle_layout(build_spec):
    layout = build_spec.bundle_layout("win32")
    defines = iss_defines()
    bundle_dir = defines["BundleDir"]
    assert (ISS.parent / bundle_dir.replace("\\", "/")).resolve() == REPO / "dist" / build_spec.APP_DIR_NAME
    text = ISS.read_text()
    for macro, value in defines.items():
        text = text.replace("{#" + macro + "}", value)
    sources = re.findall(r'^Source: "([^"]+)"', text, re.M)
    assert sources, "no [Files] entries"
    for source in sources:
        rel = source.replace("\\", "/").split(bundle_dir.replace("\\", "/") + "/", 1)[1]
        rel = rel[:-1] if rel.endswith("*") else rel
        assert rel in layout, f"{rel} is not in the bundle layout {layout}"
    for target in re.findall(r'Filename: "\{app\}\\([^"]+)"', text):
        assert target.replace("\\", "/") in layout
    icon = re.search(r"^SetupIconFile=(.+)$", text, re.M).group(1)
    assert (ISS.parent / icon.replace("\\", "/")).is_file()


def test_inno_installs_per_user_with_spanning_and_keeps_data():
    text = ISS.read_text()
    for line in ("PrivilegesRequired=lowest", "DiskSpanning=yes", "DefaultDirName={autopf}"):
        assert line in text
    assert "UninstallSilent" in text and "MB_DEFBUTTON2" in text  # data kept unless asked


def test_desktop_entry_is_valid():
    entry = configparser.ConfigParser(interpolation=None, strict=True)
    entry.optionxform = str  # keys are case-sensitive
    entry.read(DESKTOP, encoding="utf-8")
    section = entry["Desktop Entry"]
    assert section["Type"] == "Application" and section["Terminal"] == "false"
    assert section["Exec"].split()[0] == "multitalk-desktop-gui" and "%F" in section["Exec"]
    assert section["Icon"] == "multitalk-desktop"
    mimes = section["MimeType"]
    assert mimes.endswith(";") and section["Categories"].endswith(";")
    for mime in ("image/png", "image/jpeg", "audio/wav", "audio/mpeg", "video/mp4"):
        assert mime + ";" in mimes
    launchers = re.search(r'for launcher in (.+); do', (REPO / "installers/linux/build_deb.sh").read_text())
    assert "-gui" in launchers.group(1)
    validator = shutil.which("desktop-file-validate")
    if validator:
        result = subprocess.run([validator, str(DESKTOP)], capture_output=True, text=True)
        assert result.returncode == 0, result.stdout + result.stderr


def test_icons_exist_at_every_size():
    icons = REPO / "resources" / "icons"
    for size in (16, 32, 48, 64, 128, 256, 512):
        with Image.open(icons / f"multitalk-desktop-{size}.png") as img:
            assert img.size == (size, size) and img.mode == "RGBA"
    with Image.open(icons / "multitalk-desktop.ico") as ico:
        assert (256, 256) in ico.info["sizes"]


def test_bundle_trim_keeps_what_qt_and_torch_need(build_spec):
    keep = [
        "torch/bin/torch_shm_manager",
        "torch/lib/libtorch_cpu.so",
        "PySide6/Qt/plugins/platforms/libqoffscreen.so",
        "PySide6/Qt/plugins/platforms/libqxcb.so",
        "PySide6/Qt/plugins/multimedia/libffmpegmediaplugin.so",
        "PySide6/Qt/plugins/imageformats/libqjpeg.so",
        "PySide6/Qt/lib/libQt6Quick.so.6",  # the multimedia plugin links it
        "imageio_ffmpeg/binaries/ffmpeg-linux-x86_64-v9.0.2",
    ]
    drop = [
        "torch/test/test_api",
        "torch/include/ATen/ATen.h",
        "PySide6/Qt/translations/qt_de.qm",
        "PySide6/Qt/plugins/sqldrivers/libqsqlite.so",
        "PySide6/Qt/lib/libQt6WebEngineCore.so.6",
    ]
    if sys.platform.startswith("linux"):
        drop.append("torch/bin/protoc")
    assert [p for p in keep if build_spec.is_excluded(p)] == []
    assert [p for p in drop if not build_spec.is_excluded(p)] == []


def test_shell_scripts_parse():
    for script in ("installers/linux/build_deb.sh", "scripts/bundle_test.sh"):
        assert subprocess.run(["bash", "-n", str(REPO / script)]).returncode == 0, script
