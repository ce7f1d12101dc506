# Two commands for a fresh machine with only Python: `make run` and `make test`.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: setup run test lint bench bundle bundle-test clean

setup:
	@bash scripts/setup.sh

run: setup
	@if [ -z "$$DISPLAY" ] && [ -z "$$WAYLAND_DISPLAY" ]; then \
	  echo "No display found (DISPLAY and WAYLAND_DISPLAY are unset): the window needs a desktop."; \
	  echo "On a server, try: xvfb-run -a make run   or render it to PNGs: $(PY) -m multitalk_desktop snapshots snapshots/"; \
	  exit 2; \
	fi
	$(PY) -m multitalk_desktop

test: setup lint
	QT_QPA_PLATFORM=offscreen $(PY) -m pytest -q

lint: setup
	$(VENV)/bin/ruff check multitalk_desktop tests bench build_spec.py
	$(VENV)/bin/lint-imports

bench: setup
	$(PY) bench/queue_bench.py

# The frozen app (PyInstaller onedir) in dist/multitalk-desktop; docs/PACKAGING.md.
bundle: setup
	@$(PY) -c 'import PyInstaller' 2>/dev/null || $(VENV)/bin/pip install -q -c constraints.txt -e ".[bundle]"
	$(PY) build_spec.py

# Builds the bundle, runs it from dist/, builds the .deb and tarball, installs/removes the .deb.
bundle-test: setup
	@$(PY) -c 'import PyInstaller' 2>/dev/null || $(VENV)/bin/pip install -q -c constraints.txt -e ".[bundle]"
	bash scripts/bundle_test.sh

clean:
	rm -rf build dist .pytest_cache
