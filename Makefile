# Stowage: every day-to-day command. `make help` lists them.

CARGO ?= cargo
PG_URL ?= postgres://postgres:postgres@127.0.0.1:5432
REDIS_URL ?= redis://127.0.0.1:6379/9
NEXTEST := $(shell $(CARGO) nextest --version >/dev/null 2>&1 && echo yes)

# Every run builds the whole workspace with one feature set (no per-package variants), and the
# suites are picked by filter. The stowage-api binary the black-box suites drive is built with the
# CLI tests, which need it.
ifeq ($(NEXTEST),yes)
TEST_RUN := $(CARGO) nextest run --no-fail-fast --workspace
TEST_BUILD := $(CARGO) nextest run --workspace --no-run
IGNORED_ONLY := --run-ignored only
BLACK_BOX := -E 'package(stowage-tests)'
# AVIF output is a build feature of its own (rav1e costs minutes of build): its tests alone.
AVIF_TESTS := $(CARGO) nextest run -p stowage-infrastructure --features avif --lib --test avif -E 'test(avif)'
HTTP_SUITES := -E 'package(stowage-tests) & (binary(http) | binary(credentials) | binary(keys) | binary(upload_urls) | binary(tus) | binary(replicas) | binary(faults))'
else
TEST_RUN := $(CARGO) test --no-fail-fast --workspace
TEST_BUILD := $(CARGO) test --workspace --no-run
IGNORED_ONLY := -- --ignored
BLACK_BOX := --test http --test credentials --test storage --test pneumatic --test keys --test upload_urls --test tus --test replicas --test faults
AVIF_TESTS := $(CARGO) test -p stowage-infrastructure --features avif --lib --test avif avif
HTTP_SUITES := --test http --test credentials --test keys --test upload_urls --test tus --test replicas --test faults
endif

.PHONY: help run build release test test-avif test-integration s3s-fs moto check-deploy bench soak lint fmt check ci clean schemathesis fuzz fuzz-build

help: ## List the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-18s %s\n", $$1, $$2}'

run: ## Start the service on its embedded defaults (SQLite + disk under ./data, printed token)
	$(CARGO) run -p stowage-api -- serve

build: ## Debug build of the whole workspace
	$(CARGO) build --workspace

release: ## Optimised stowage-api binary in target/release, with AVIF output (needs nasm)
	$(CARGO) build --release -p stowage-api --features avif

test: ## Every test that needs no external service
	$(TEST_RUN)

test-integration: s3s-fs moto ## Adapter tests on Postgres, Redis, s3s-fs and moto, then the HTTP suites on Postgres + Redis, on disk and on S3
	STOWAGE_TEST_DATABASE_URL=$(PG_URL) STOWAGE_TEST_REDIS_URL=$(REDIS_URL) $(TEST_RUN) $(IGNORED_ONLY)
	STOWAGE_TEST_DATABASE_URL=$(PG_URL) STOWAGE_TEST_REDIS_URL=$(REDIS_URL) $(TEST_RUN) $(BLACK_BOX)
	STOWAGE_TEST_STORAGE=s3 STOWAGE_TEST_DATABASE_URL=$(PG_URL) STOWAGE_TEST_REDIS_URL=$(REDIS_URL) $(TEST_RUN) $(HTTP_SUITES)

test-avif: ## The `avif` build feature: clippy, the AVIF encoder, AVIF variants over HTTP and in Chromium
	$(CARGO) clippy -p stowage-infrastructure --features avif --all-targets -- -D warnings
	$(AVIF_TESTS)

# moto 5.2.1 names CompleteMultipartUpload's result element wrongly (fixed in 5.2.2): an older one
# already installed is upgraded.
moto: ## Install moto's S3 server, the second S3 implementation of the blob-store contract (PyPI)
	@{ command -v moto_server >/dev/null 2>&1 && python3 -c 'import sys, moto; \
		sys.exit(tuple(int(p) for p in moto.__version__.split(".")[:3]) < (5, 2, 2))' 2>/dev/null; } || \
		python3 -m pip install -q 'moto[server]>=5.2.2'

s3s-fs: ## Install the S3-compatible test server (cached in ~/.cargo/bin)
	@command -v s3s-fs >/dev/null 2>&1 || test -x $(HOME)/.cargo/bin/s3s-fs || \
		$(CARGO) install s3s-fs@0.14.1 --features binary --locked

bench: s3s-fs ## Release stowage-api against Postgres, Redis and s3s-fs, measured beside direct S3; writes target/bench/results.json
	python3 -c 'import httpx' 2>/dev/null || python3 -m pip install -q httpx
	$(CARGO) build --release -p stowage-api -p stowage-bench
	./target/release/stowage-bench

soak: s3s-fs ## Release stowage-api under steady mixed traffic for SOAK_SECONDS (600); fails on growth, errors or orphans; writes target/soak/results.json
	$(CARGO) build --release -p stowage-api -p stowage-bench
	./target/release/stowage-bench soak

# Fuzzing needs the nightly toolchain and cargo-fuzz; fuzz/ is a package outside the workspace.
# Each target starts from its committed seeds (fuzz/corpus/<target>) and keeps what it finds in
# fuzz/target/corpus/<target>; a crashing input is written to fuzz/artifacts/<target>/.
# The targets are built with overflow checks and debug assertions but no sanitizer: the project's
# code has no `unsafe`, so what fuzzing finds here is a panic, and AddressSanitizer would multiply
# the build time of the S3 and SQL crates that the token and URL parsers sit beside.
FUZZ_SECONDS ?= 60
FUZZ_RSS_MB ?= 512
FUZZ_JOBS ?= 1
FUZZ_BUILD_FLAGS ?= --sanitizer none --debug-assertions
# Outside the clone, so that every clone on a machine shares one build of the dependencies (a first
# build takes half an hour of CPU; later ones rebuild only the project's crates).
FUZZ_TARGET_DIR ?= $(HOME)/.cache/stowage/fuzz-target
FUZZ_BIN_DIR = $(FUZZ_TARGET_DIR)/$(shell rustc -vV | sed -n 's/^host: //p')/release
# target:max_len, the longest input each parser needs.
FUZZ_TARGETS ?= range:256 filename:4096 content_sniff:1024 image_header:32768 image_strip:65536 \
	key_metadata:9216 ids:256 tus_metadata:4096 jwt:4096 token_cache:16384 upload_url:4200 \
	request_headers:8192 request_dto:17408 multipart_framing:8192 tus_headers:4096

fuzz-build: ## Builds every fuzz target (nightly; installs cargo-fuzz when missing) into fuzz/target/bin
	@$(CARGO) fuzz --version >/dev/null 2>&1 || $(CARGO) install cargo-fuzz --locked
	@mkdir -p $(FUZZ_TARGET_DIR) fuzz/target/bin
	@# Clones share the build: the lock keeps another clone's binaries from replacing these between
	@# the build and the copy (hard links, which a later build replaces rather than rewrites).
	cd fuzz && flock $(FUZZ_TARGET_DIR)/.stowage-lock sh -c '\
		CARGO_TARGET_DIR=$(FUZZ_TARGET_DIR) $(CARGO) +nightly fuzz build $(FUZZ_BUILD_FLAGS) && \
		for spec in $(FUZZ_TARGETS); do t=$${spec%%:*}; \
			ln -f $(FUZZ_BIN_DIR)/$$t target/bin/$$t 2>/dev/null || cp -f $(FUZZ_BIN_DIR)/$$t target/bin/$$t || exit 1; \
		done'

fuzz: fuzz-build ## Every fuzz target for FUZZ_SECONDS seconds (default 60), FUZZ_JOBS at a time, in bounded memory; fails on a crash
	FUZZ_SECONDS=$(FUZZ_SECONDS) FUZZ_RSS_MB=$(FUZZ_RSS_MB) FUZZ_JOBS=$(FUZZ_JOBS) \
		FUZZ_BIN_DIR=target/bin fuzz/run.sh $(FUZZ_TARGETS)

schemathesis: ## The debug service against its own /openapi.json with schemathesis (pip install schemathesis)
	$(TEST_BUILD)
	bash tests/schemathesis.sh

check-deploy: ## Validate deploy/ (YAML, settings, Dockerfile, nginx -t) without a container engine
	bash deploy/check.sh

lint: ## Formatting check and clippy with warnings as errors
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt: ## Format the code
	$(CARGO) fmt --all

check: lint ## lint, plus the architecture rules (presentation never sees adapters; only config.rs reads the environment, and the bench tool)
	@! $(CARGO) tree -p stowage-presentation -e normal | grep -E 'stowage-infrastructure|sea-orm|aws-sdk|redis|reqwest'
	@! grep -rn 'std::env::var' crates/*/src --include=*.rs | grep -v -e 'crates/api/src/config.rs' -e 'crates/bench/src'
	@! $(CARGO) tree -p stowage-application -e normal | grep -E 'sea-orm|aws-sdk|redis|reqwest|axum'
	@echo "architecture rules hold"

ci: ## What CI runs: bash .ci/run
	bash .ci/run

clean: ## Remove build output and the local data directory
	$(CARGO) clean
	rm -rf data
