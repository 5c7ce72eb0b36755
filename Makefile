# sandboxer — two commands do everything on a fresh Debian machine (as root):
#   make run    installs what is needed, prepares the host, builds, runs demo sandboxes
#   make test   the same set-up, then the whole test suite (unit, integration, isolation attacks)
SHELL := /bin/bash
SWIFT ?= swift
RELEASE_BIN := .build/release/sandboxer
DEBUG_BIN := .build/debug/sandboxer
# skopeo moves images in and out of the template store (template import/export); zstd and gzip
# decompress image layers; mmdebstrap builds the built-in debian template.
APT_PACKAGES := crun runc bubblewrap iproute2 python3 nodejs procps curl binutils skopeo zstd gzip mmdebstrap
# Only for `make test`: gdb lets the test watchdog print the stacks of a hung test process;
# postgresql runs a private server for the PostgreSQL store's tests (scripts/pg-test-server.sh);
# chromium and chromium-driver drive the monitor page in tests/python/test_monitor.py; gcc compiles
# the ABI attack in IsolationTests (its /usr is visible inside a sandbox); podman loads an exported
# template in TemplateStoreTests.
TEST_PACKAGES := gdb postgresql chromium chromium-driver python3-pip openssl gcc podman
DEMO_PY := import os; print("uid", os.getuid(), "sees", sorted(os.listdir("/")))

.PHONY: all deps build build-debug prepare wasm run test bench clean gc install uninstall

all: build

## Installs the Debian packages the project needs, only those missing.
deps:
	@missing=""; for p in $(APT_PACKAGES) $(EXTRA_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get update -qq && apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

## Builds the QuickJS wasm32-wasi module used by the WASM backend (cached, idempotent) and puts it
## beside the built binaries (the only place sandboxer looks for it, besides $SANDBOXER_QJS_WASM).
wasm:
	@bash wasm/quickjs/build.sh

## Every product: the `sandboxer` CLI/server and `sandboxer-agent` (pid 1 of long-lived sandboxes).
build: deps
	$(SWIFT) build -c release --static-swift-stdlib --product sandboxer
	$(SWIFT) build -c release --product sandboxer-agent

build-debug: deps
	$(SWIFT) build --product sandboxer
	$(SWIFT) build --product sandboxer-agent

## Prepares the host for crun (idempotent; no-op on pure cgroup v1/v2 hosts).
prepare: build
	$(RELEASE_BIN) doctor --fix

run: prepare wasm
	@echo "== sandboxer doctor"; $(RELEASE_BIN) doctor || true
	@echo "== the default template, debian (built once per machine with mmdebstrap, ~30 s; then cached)"
	$(RELEASE_BIN) template base
	@echo "== a python sandbox"
	$(RELEASE_BIN) run -- python3 -c '$(DEMO_PY)'
	@echo "== limits: a CPU spin stopped by a 2 s timeout (exit 124 expected)"
	$(RELEASE_BIN) run --timeout 2s --memory 128M --pids 64 --json -- sh -c 'yes > /dev/null'; test $$? -eq 124
	@echo "== code from a file with the bounty profile"
	@printf 'import sys, json\nprint(json.dumps({"echo": sys.stdin.read()}))\n' > /tmp/sandboxer-demo.py
	@printf '{"task": 1}' > /tmp/sandboxer-demo.json
	$(RELEASE_BIN) run --lang python --code-file /tmp/sandboxer-demo.py --stdin /tmp/sandboxer-demo.json --profile bounty
	@echo "== JavaScript in the WASM backend (QuickJS under WasmKit), then the same inside a container"
	$(RELEASE_BIN) run --isolation wasm --lang js -c 'console.log([3,1,2].sort().join(","))'
	$(RELEASE_BIN) run --isolation wasm+container --lang js -c 'console.log([3,1,2].sort().join(","))'
	@echo "== the server: long-lived sandboxes over HTTP"
	scripts/demo-serve.sh $(RELEASE_BIN)
	@echo "== done: see README.md for more"

# The test target's `deps` also installs TEST_PACKAGES (a target-specific variable reaches prerequisites).
# SANDBOXER_REQUIRE_FIXTURES=1: what this target sets up itself (root, crun/runc, qjs.wasm and the
# other .build-wasm modules, the agent, PostgreSQL, gcc) must be there — a test missing it fails
# instead of skipping (Tests/SandboxTestSupport/Requirement.swift, tests/python/conftest.py).
test: EXTRA_PACKAGES := $(TEST_PACKAGES)
test: deps build-debug wasm
	$(DEBUG_BIN) doctor --fix
	@# The default profile's template: built once per machine (mmdebstrap, ~30 s), then cached.
	$(DEBUG_BIN) template base
	@# E2B's code interpreter template (Jupyter from PyPI): built once per machine, then cached.
	$(DEBUG_BIN) template code-interpreter
	@# A private PostgreSQL (own data directory, a unix socket in it) for the PostgreSQL store's
	@# tests, stopped and removed on the way out whatever the tests did.
	pgdir=$$(mktemp -d /tmp/sandboxer-pg.XXXXXX); trap 'scripts/pg-test-server.sh stop '"$$pgdir" EXIT; \
	  pgurl=$$(scripts/pg-test-server.sh start "$$pgdir") || exit 1; \
	  export SANDBOXER_TEST_PG_URL="$$pgurl" SANDBOXER_REQUIRE_FIXTURES=1; SWIFT=$(SWIFT) scripts/test-with-watchdog.sh; swift=$$?; \
	  echo "== the HTTP API from outside: pytest (tests/python) and schemathesis against a live server"; \
	  scripts/api-tests.sh $(DEBUG_BIN); api=$$?; \
	  $(DEBUG_BIN) gc >/dev/null; scripts/test-summary.sh $$swift $$api

## Installs under PREFIX (default /usr/local; DESTDIR stages it): the programs in
## libexec/sandboxer (stripped, debug info beside them), bin/sandboxer, the systemd unit in
## lib/systemd/system. BUILD=debug installs the debug build. See scripts/install.sh.
PREFIX ?= /usr/local
BUILD ?= release
install: $(if $(filter debug,$(BUILD)),build-debug,build)
	@bash wasm/quickjs/build.sh
	PREFIX="$(PREFIX)" DESTDIR="$(DESTDIR)" scripts/install.sh install .build/$(BUILD)

## Removes what `make install` put under PREFIX (the data and /etc/sandboxer stay).
uninstall:
	PREFIX="$(PREFIX)" DESTDIR="$(DESTDIR)" scripts/install.sh uninstall

# The queue suite's PostgreSQL cases run on a private server (as the tests do).
bench: EXTRA_PACKAGES := postgresql
bench: prepare wasm
	$(RELEASE_BIN) bench -i 30
	$(RELEASE_BIN) bench --suite wasm -i 10
	$(RELEASE_BIN) bench --suite api -i 100
	$(RELEASE_BIN) bench --suite egress -i 200
	pgdir=$$(mktemp -d /tmp/sandboxer-pg.XXXXXX); trap 'scripts/pg-test-server.sh stop '"$$pgdir" EXIT; \
	  pgurl=$$(scripts/pg-test-server.sh start "$$pgdir") || exit 1; \
	  $(RELEASE_BIN) bench --suite queue -i 100 --runs 600 --store "$$pgurl"

gc:
	$(RELEASE_BIN) gc

clean:
	rm -rf .build .build-wasm
