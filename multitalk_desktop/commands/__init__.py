"""One module per command (group) of `multitalk-desktop`. Each exposes
`add_arguments(parser)` and `run(args) -> int`, and imports nothing heavy at module level, so
`--help` and `--version` stay instant."""
