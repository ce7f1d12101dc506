"""MultiTalk Desktop: talking videos from a portrait and voices, on your own GPU, offline."""

from importlib import metadata as _metadata

try:
    __version__ = _metadata.version("multitalk-desktop")
except _metadata.PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.1.0"
