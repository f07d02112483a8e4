# Articula — the two commands: `make run` and `make test` (plus `make build`).
SHELL := /bin/bash
export CARGO_TARGET_DIR ?= $(HOME)/.cache/articula/target
export ARTICULA_TEST_PG_URL ?= postgres://postgres@127.0.0.1:5432/postgres
VENV := $(HOME)/.cache/articula/venv
BIN := $(CARGO_TARGET_DIR)/release/articula
WEB_STAMP := web/node_modules/.installed

.PHONY: generate build run test test-rust test-loadtests test-clients test-web web web-deps test-deps lint fmt clean-test-dbs bench screenshots

## build: web assets and the release binary
build: web
	cargo build --release --locked --bin articula

## run: build everything, then serve the demo on https://localhost:8443
run: build
	$(BIN) serve --demo

$(WEB_STAMP): web/package.json web/package-lock.json
	cd web && npm ci --no-audit --no-fund
	touch $@

web-deps: $(WEB_STAMP)

## web: build the browser client into web/dist (embedded in the release binary), only when its
## sources changed (the stamp is web/node_modules/.dist-built). Vite builds into web/.dist-new;
## only files whose bytes differ are copied into web/dist, so a touched but unchanged source
## leaves web/dist's modification times alone and cargo neither re-embeds nor relinks.
WEB_SRC := $(shell find web/src web/public -type f 2>/dev/null) web/index.html web/package.json \
	web/package-lock.json web/vite.config.ts web/tsconfig.json
WEB_DIST := web/node_modules/.dist-built

$(WEB_DIST): $(WEB_STAMP) $(WEB_SRC)
	rm -rf web/.dist-new
	cd web && npm run build -- --outDir .dist-new
	mkdir -p web/dist
	cd web/.dist-new && find . -type f | while read -r f; do \
	  cmp -s "$$f" "../dist/$$f" || { mkdir -p "../dist/$$(dirname "$$f")" && cp "$$f" "../dist/$$f"; }; done
	cd web/dist && find . -type f | while read -r f; do [ -e "../.dist-new/$$f" ] || rm -f "$$f"; done
	rm -rf web/.dist-new
	touch $@

web: $(WEB_DIST)

## generate: rewrite the files generated from the Rust code (the wire's TypeScript types);
## `make test` fails while one of them is stale
generate:
	ARTICULA_UPDATE_GENERATED=1 cargo test --locked -p articula-protocol --test typescript

## test: install what the tests need, then run every test
test: test-deps web lint test-rust test-loadtests test-clients test-web

test-deps:
	bash .ci/deps.sh

lint:
	cargo fmt --all -- --check
	cargo clippy --locked --workspace --all-targets -- -D warnings

## Rust unit and integration tests; integration tests run on SQLite and on PostgreSQL, file
## tests also against a real S3-compatible server (moto) started here for the run.
test-rust: clean-test-dbs
	@port=$$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'); \
	$(VENV)/bin/moto_server -H 127.0.0.1 -p $$port >/dev/null 2>&1 & moto=$$!; \
	trap "kill $$moto" EXIT; \
	for i in $$(seq 1 100); do (echo > /dev/tcp/127.0.0.1/$$port) 2>/dev/null && break; sleep 0.1; done; \
	ARTICULA_TEST_S3_ENDPOINT=http://127.0.0.1:$$port cargo test --locked --workspace --no-fail-fast

## Short load scenarios: correctness only (lost, duplicated, out of order), never timing.
test-loadtests:
	cargo build --locked -p articula -p articula-loadtests --bins
	$(CARGO_TARGET_DIR)/debug/articula-loadtests smoke --server $(CARGO_TARGET_DIR)/debug/articula

## Real tus clients (tuspy, tus-js-client): a 200 MB upload interrupted and resumed, then verified;
## Python websockets + msgpack drive the WebSocket protocol in both codecs (tests/clients/ws_protocol.py).
test-clients:
	cargo build --locked --bin articula
	bash tests/clients/run.sh

## Browser client: unit tests (vitest) and end-to-end tests in Debian Chromium (playwright-core).
## Their screenshots go to web/test-results/screenshots (ignored by git).
test-web: web
	cargo build --locked --bin articula
	cd web && npm run test:unit && npm run test:e2e

## screenshots: run the browser tests with their screenshots written to docs/screenshots (the
## ones the README links), on purpose.
screenshots: web
	cargo build --locked --bin articula
	cd web && E2E_SCREENSHOTS=$(CURDIR)/docs/screenshots npm run test:e2e

clean-test-dbs:
	-psql "$(ARTICULA_TEST_PG_URL)" -Atc "SELECT 'DROP DATABASE IF EXISTS \"' || datname || '\" WITH (FORCE);' FROM pg_database WHERE datname LIKE 'articula_t_%'" | psql "$(ARTICULA_TEST_PG_URL)" -q >/dev/null

## bench: the full load-test run behind BENCHMARKS.md (minutes; release build)
bench: clean-test-dbs
	cargo build --release --locked -p articula -p articula-loadtests --bins
	$(CARGO_TARGET_DIR)/release/articula-loadtests all --server $(BIN)

fmt:
	cargo fmt --all
