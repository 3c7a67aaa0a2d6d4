# The two commands: `make run` and `make test`. Both set up .venv when it is missing or stale.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
REQS := requirements.txt requirements-media.txt requirements-embedded.txt requirements-piper.txt requirements-dev.txt \
	requirements-worker.txt
STAMP := $(VENV)/.installed

.PHONY: run test lint typecheck unit venv clean settings-doc

# Reinstall only when a requirements file changed; pip's cache keeps wheels and model packages.
# requirements-worker.txt: the Functions Python worker, whose indexing the tests and the local function host run;
# it declares Python >= 3.13, and pip takes these two flags on its command line only.
$(STAMP): $(REQS)
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt 2>&1 \
		| { grep -v "is ignored: it is neither a file nor a directory" || true; }
	set -o pipefail; $(PY) -m pip install --quiet --disable-pip-version-check --no-deps --ignore-requires-python \
		-r requirements-worker.txt 2>&1 | { grep -v "is ignored: it is neither a file nor a directory" || true; }
	@touch $(STAMP)

venv: $(STAMP)

# ARGS="--scenario clinic", ARGS="--script my_call.yaml", ARGS="--engines azure"
run: $(STAMP)
	$(PY) -m local_stack $(ARGS)

# The stack kept up, with the browser softphone at http://127.0.0.1:8765/ (Ctrl-C stops it).
.PHONY: serve
serve: $(STAMP)
	$(PY) -m local_stack.serve $(ARGS)

settings-doc: $(STAMP)
	$(PY) -m switchboard.settings_doc write

lint: $(STAMP)
	$(PY) -m ruff check .

typecheck: $(STAMP)
	$(PY) -m mypy

unit: $(STAMP)
	$(PY) -m pytest -q tests/unit

# The local Cosmos DB server the call-record tests run against; reinstalled only when package-lock.json changed.
node_modules: package-lock.json
	@if command -v npm >/dev/null; then npm ci --no-audit --no-fund && touch node_modules; \
	else echo "npm not found: the Cosmos DB contract tests will be skipped"; fi

# Headless Chromium for the softphone page's browser test (Debian's package): installed with apt-get, as root
# or through passwordless sudo. Without it the test is skipped (loudly), and `make test` goes on.
.PHONY: chromium
chromium:
	@command -v chromium >/dev/null || command -v chromium-browser >/dev/null || { \
		if [ "$$(id -u)" = 0 ]; then SUDO=; elif command -v sudo >/dev/null; then SUDO="sudo -n"; else SUDO=none; fi; \
		if [ "$$SUDO" != none ] && command -v apt-get >/dev/null \
			&& $$SUDO apt-get update -qq && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
		then echo "chromium installed"; \
		else echo "chromium could not be installed (needs apt-get, and root or passwordless sudo):" \
			"the softphone browser test will be skipped. Install it yourself: sudo apt-get install chromium"; fi; }

# The Bicep policy scan (checkov) in its own virtualenv, rebuilt only when requirements-infra.txt changes.
INFRA_VENV := .venv-infra
$(INFRA_VENV)/.installed: requirements-infra.txt
	@test -x $(INFRA_VENV)/bin/python || $(PYTHON) -m venv $(INFRA_VENV)
	$(INFRA_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-infra.txt 2>&1 \
		| { grep -v "is ignored: it is neither a file nor a directory" || true; }
	@touch $@

# Fails on a failed check, an unparsable file or a waiver without a reason; prints every waiver.
.PHONY: infra-scan
infra-scan: $(INFRA_VENV)/.installed
	$(INFRA_VENV)/bin/python infra/scan_bicep.py

# The set-up (two virtualenvs, npm, Chromium) and then the static checks run side by side: on a fresh
# 2-core machine they are most of a minute each, and the installs mostly wait on disk and network.
test:
	$(MAKE) --no-print-directory -j4 --output-sync=target $(STAMP) $(INFRA_VENV)/.installed node_modules chromium
	$(MAKE) --no-print-directory -j3 --output-sync=target lint typecheck infra-scan
	$(PY) -m pytest -q

# How many concurrent calls the media host carries in real time (prints a table; never fails on a budget).
.PHONY: bench-media
bench-media: $(STAMP)
	$(PY) -m bench.media_load

# How fast the speech cascade answers simulated callers: turn, overhead and barge-in p50/p95 (prints a
# table; never fails on a budget).
.PHONY: bench-turn
bench-turn: $(STAMP)
	$(PY) -m bench.turn_latency

# How much conversation load the host carries: N concurrent banking callers (ACS and AudioCodes, speech,
# barge-ins, handoffs) on the embedded cascade, stepped up until turn latency p95 > 2x budget; then the host's
# own ceiling on the echo pipeline as calls per core. ARGS="--max-calls 4 --skip-ceiling" (prints tables;
# never fails on a budget).
.PHONY: bench-load
bench-load: $(STAMP)
	$(PY) -m bench.load $(ARGS)

# How fast the control plane answers: `import function_app` time and RSS, and IncomingCall event -> answer
# request p50/p99 against LocalAcs, Redis and a fake Durable webhook (prints a table; never fails on a budget).
.PHONY: bench-control
bench-control: $(STAMP)
	$(PY) -m bench.control

# Fuzz every WebSocket protocol and HTTP endpoint beside a healthy call (three minutes; prints inputs and
# outcomes per target, saves each finding's input to out/fuzz/). ARGS="--seconds 600", ARGS="--inputs 1000",
# ARGS="--replay out/fuzz/<file>.json" (never fails on figures; fails on a crash, a hang or an affected call).
.PHONY: fuzz
fuzz: $(STAMP)
	$(PY) -m tests.fuzz $(ARGS)

clean:
	rm -rf $(VENV) $(INFRA_VENV) out .mypy_cache .ruff_cache .pytest_cache
