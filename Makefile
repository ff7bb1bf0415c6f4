# fer-audio: two commands on a fresh Debian 12 machine (as root, or with sudo for apt).
#   make run    set up, then run the service (the bundled demo clip into a WAV when no camera exists)
#   make test   set up with the test extras, then lint, type-check, run the test suite, and check
#               that the wheel installs and runs on its own (packaging/check_wheel.sh)
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
OUT ?= out
APT_PACKAGES := python3-venv python3-pip libportaudio2 libsndfile1 espeak-ng pulseaudio pulseaudio-utils libasound2-plugins alsa-utils
# Only the tests need these: strace watches the service for written images and network sockets;
# the speech tests start a private speech-dispatcher (with its espeak-ng module) themselves.
# The service needs no package for speech-dispatcher: it speaks SSIP itself (fer_audio/ssip.py)
# to the user's own server, the one their screen reader uses, when it runs.
APT_TEST_PACKAGES := strace speech-dispatcher speech-dispatcher-espeak-ng
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: run test setup setup-dev apt lint pytest wheel-check demo clean

run: setup
	@if ls /dev/video[0-9]* >/dev/null 2>&1; then \
		echo "camera found: starting fer-audio run (Ctrl+C stops)"; \
		$(BIN)/fer-audio run; \
	else \
		echo "no camera found: running the bundled demo clip through the whole pipeline"; \
		mkdir -p $(OUT) && $(BIN)/fer-audio demo --out-dir $(OUT); \
	fi

test: setup-dev lint pytest wheel-check

apt: .stamp-apt
.stamp-apt: APT_WANTED = $(APT_PACKAGES)
.stamp-apt-test: APT_WANTED = $(APT_TEST_PACKAGES)
# The Makefile is a prerequisite so that a package added to a list is installed on the next run.
.stamp-apt .stamp-apt-test: Makefile
	@missing=""; for p in $(APT_WANTED); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:$$missing"; \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
	fi
	@touch $@

$(BIN)/python: | .stamp-apt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

setup: .stamp-apt $(VENV)/.stamp-run
$(VENV)/.stamp-run: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e .
	@touch $@

setup-dev: .stamp-apt .stamp-apt-test $(VENV)/.stamp-dev
$(VENV)/.stamp-dev: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[dev,train]'
	@touch $@ $(VENV)/.stamp-run

lint: setup-dev
	$(BIN)/ruff check fer_audio training tests benchmarks sounds
	$(BIN)/mypy

pytest: setup-dev
	$(BIN)/pytest -q

# pip install as a user does it: the wheel into a fresh venv outside the checkout, then
# `fer-audio demo` and `fer-audio check-config` from an empty folder.
wheel-check: setup
	packaging/check_wheel.sh $(BIN)/pip $(PYTHON)

clean:
	rm -rf $(VENV) .stamp-apt .stamp-apt-test $(OUT) .pytest_cache .mypy_cache .ruff_cache
