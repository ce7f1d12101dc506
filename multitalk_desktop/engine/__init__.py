"""MultiTalk inference on diffusers. Importing this package is cheap: torch loads only in the
modules that need it."""
