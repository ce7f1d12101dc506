"""Entry of the frozen app: the `multitalk-desktop` command, or the window when started as
`multitalk-desktop-gui` (the windowed .exe on Windows, a symlink on Linux).

Diagnostics: with MULTITALK_DESKTOP_RUN_PY=<file.py> set, the frozen app runs that Python file
instead (the bundle has no separate interpreter; this is how bundle_test.sh checks imports).
"""

import multiprocessing
import os
import runpy
import sys
from pathlib import Path

from multitalk_desktop.cli import gui_main, main

if __name__ == "__main__":
    multiprocessing.freeze_support()  # a frozen child process must not re-run the command
    script = os.environ.pop("MULTITALK_DESKTOP_RUN_PY", "")
    if script:
        runpy.run_path(script, run_name="__main__")
        sys.exit(0)
    if Path(sys.argv[0]).stem.lower().endswith("-gui"):
        sys.exit(gui_main(sys.argv[1:]))
    sys.exit(main())
