"""PySide6 front end: the only package that imports Qt."""

from multitalk_desktop.gui.refcount_guard import immortalise_singletons

immortalise_singletons()
