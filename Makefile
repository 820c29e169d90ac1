# fluxbase-exporter: the README's commands. `make run` runs it, `make test` passes the tests.

CARGO ?= cargo
# Extra flags for `make run`, e.g. make run ARGS="--log.level debug"
ARGS ?=

PREFIX ?= /usr/local
DESTDIR ?=
# The binary `make install` installs (the release build unless given).
BINARY ?= target/release/fluxbase-exporter

.PHONY: run test test-tools bench-tools build release static install bench soak fuzz lint fmt clean

run: ## Build and run the exporter on :9745 with nothing configured.
	$(CARGO) run --release --locked -- $(ARGS)

test: test-tools ## Install missing test tools (promtool, PostgreSQL, ...), then run every test.
	static="$$(scripts/build-static)" && FLUXBASE_EXPORTER_STATIC_BINARY="$$static" $(CARGO) test --locked --lib --bins --tests
	$(CARGO) test --locked -p tiny_http --lib

test-tools:
	@scripts/ensure-test-tools

bench-tools:
	@scripts/ensure-test-tools --bench

build:
	$(CARGO) build --locked

release:
	$(CARGO) build --release --locked

static: ## The static (musl) binary the container image ships; prints its path.
	@scripts/build-static

install: ## Binary, systemd units and example settings under $(DESTDIR)$(PREFIX).
ifeq ($(BINARY),target/release/fluxbase-exporter)
	$(CARGO) build --release --locked
endif
	install -D -m 0755 "$(BINARY)" "$(DESTDIR)$(PREFIX)/bin/fluxbase-exporter"
	install -d "$(DESTDIR)$(PREFIX)/lib/systemd/system"
	sed 's|@PREFIX@|$(PREFIX)|g' systemd/fluxbase-exporter.service > "$(DESTDIR)$(PREFIX)/lib/systemd/system/fluxbase-exporter.service"
	sed 's|@PREFIX@|$(PREFIX)|g' systemd/fluxbase-exporter.socket > "$(DESTDIR)$(PREFIX)/lib/systemd/system/fluxbase-exporter.socket"
	install -D -m 0644 systemd/fluxbase-exporter.env.example "$(DESTDIR)/etc/fluxbase/fluxbase-exporter.env.example"
	install -D -m 0644 README.md "$(DESTDIR)$(PREFIX)/share/doc/fluxbase-exporter/README.md"

bench: test-tools bench-tools ## Benchmarks beside the peers in one run; writes BENCHMARKS.md.
	scripts/bench

soak: test-tools bench-tools ## SOAK_MINUTES (default 30) of steady load; adds its curve to BENCHMARKS.md.
	mkdir -p benchmarks
	$(CARGO) bench --locked --bench soak > benchmarks/soak.md.new
	{ sed -n 1,2p benchmarks/soak.md.new; \
	  echo "- started $$(date -u -d "-$${SOAK_MINUTES:-30} min" '+%Y-%m-%d %H:%M UTC'), commit $$(git rev-parse --short HEAD), $$(nproc) cores, Linux $$(uname -r)"; \
	  echo; sed -n '3,$$p' benchmarks/soak.md.new; } > benchmarks/soak.md
	rm benchmarks/soak.md.new
	scripts/bench-report

fuzz: ## Each fuzz target for FUZZ_SECONDS (default 60); property tests without nightly.
	scripts/fuzz

lint: ## Formatting and clippy, warnings as errors.
	$(CARGO) fmt --check
	$(CARGO) clippy --locked --all-targets -- -D warnings

fmt:
	$(CARGO) fmt

clean:
	$(CARGO) clean
