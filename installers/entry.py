"""Entry of the frozen app: the `multitalk-desktop` command, or the window when started as
`multitalk-desktop-gui` (the windowed .exe on Windows, a symlink on Linux)."""

import multiprocessing
import sys
from pathlib import Path

from multitalk_desktop.cli import gui_main, main

if __name__ == "__main__":
    multiprocessing.freeze_support()  # a frozen child process must not re-run the command
    if Path(sys.argv[0]).stem.lower().endswith("-gui"):
        sys.exit(gui_main(sys.argv[1:]))
    sys.exit(main())
