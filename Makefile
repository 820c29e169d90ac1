# fluxbase-exporter: the README's commands. `make run` runs it, `make test` passes the tests.

CARGO ?= cargo
# Extra flags for `make run`, e.g. make run ARGS="--log.level debug"
ARGS ?=

.PHONY: run test test-tools build release bench lint fmt clean

run: ## Build and run the exporter on :9745 with nothing configured.
	$(CARGO) run --release --locked -- $(ARGS)

test: test-tools ## Install missing test tools (promtool), then run every test.
	$(CARGO) test --locked --lib --bins --tests

test-tools:
	@scripts/ensure-test-tools

bench-tools:
	@scripts/ensure-test-tools --bench

build:
	$(CARGO) build --locked

release:
	$(CARGO) build --release --locked

bench: test-tools bench-tools ## Benchmarks, each beside its peer in the same run.
	$(CARGO) bench --locked --bench metrics_core
	$(CARGO) bench --locked --bench database_down
	$(CARGO) bench --locked --bench storage_scan
	$(CARGO) bench --locked --bench ingest

lint: ## Formatting and clippy, warnings as errors.
	$(CARGO) fmt --check
	$(CARGO) clippy --locked --all-targets -- -D warnings

fmt:
	$(CARGO) fmt

clean:
	$(CARGO) clean
