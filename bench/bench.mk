# `make bench`: the benchmark suite (bench/README.md). Included from the Makefile; it uses that
# file's PYTHON, CARGO and CC and its c-examples and python-install targets.
#
#   make bench                      # every workload against every target, 3 rounds of 10 s (~15 min)
#   make bench BENCH_QUICK=1        # a smoke run: 1 round of 2 s, 128 MiB transfers (~2 min)
#   make bench BENCH_ONLY=hello,codec BENCH_ROUNDS=5
#   make bench-profile              # perf and py-spy on our Python and C hello targets under load
#   make bench BENCH_BASELINE=a1f9d2f  # also that revision's build of ours, "<target> (base)"
#   make bench-instructions         # instructions per request under callgrind, counted twice (~5 min)

BENCH_QUICK ?=
BENCH_IS_QUICK = $(filter-out 0 no false,$(BENCH_QUICK))
BENCH_ROUNDS ?= $(if $(BENCH_IS_QUICK),1,3)
BENCH_DURATION ?= $(if $(BENCH_IS_QUICK),2,10)
BENCH_THREADS ?= 4
BENCH_CONNECTIONS ?= 32
BENCH_ONLY ?=
BENCH_PROFILE_SECONDS ?= 10
BENCH_BASELINE ?=
BENCH_INSTR_REQUESTS ?= 200
BENCH_INSTR_RUNS ?= 2
BENCH_INSTR_ONLY ?=
BENCH_CFLAGS ?= -std=c11 -D_POSIX_C_SOURCE=200809L -Wall -Wextra -Werror -O2
BENCH_ARGS = --rounds $(BENCH_ROUNDS) --duration $(BENCH_DURATION) --threads $(BENCH_THREADS) \
	--connections $(BENCH_CONNECTIONS) $(if $(BENCH_IS_QUICK),--quick) $(if $(BENCH_ONLY),--only $(BENCH_ONLY)) \
	$(if $(BENCH_BASELINE),--baseline $(BENCH_BASELINE_DIR))

# The baseline: a detached git worktree of BENCH_BASELINE, named by its short commit id, so that
# a second run against the same revision builds nothing new. Its Python face goes to a venv in it.
ifneq ($(BENCH_BASELINE),)
BENCH_BASELINE_COMMIT := $(shell git rev-parse --short --verify --quiet '$(BENCH_BASELINE)^{commit}')
$(if $(BENCH_BASELINE_COMMIT),,$(error BENCH_BASELINE=$(BENCH_BASELINE) names no commit))
BENCH_BASELINE_DIR := $(CURDIR)/target/bench/baseline-$(BENCH_BASELINE_COMMIT)
endif

.PHONY: bench bench-deps bench-build bench-baseline bench-profile bench-instructions

## Every workload against every target in one run; the table also lands in bench/results/.
bench: bench-build $(if $(BENCH_BASELINE),bench-baseline)
	$(PYTHON) bench/run.py $(BENCH_ARGS)

## Our Python and C hello targets under wrk, profiled (bench/results/profile-*/report.txt).
bench-profile: bench-build
	BENCH_INSTALL_PROFILERS=1 PYTHON=$(PYTHON) bash bench/install-deps.sh
	$(PYTHON) bench/run.py --threads $(BENCH_THREADS) --profile $(BENCH_PROFILE_SECONDS)

## User-space instructions per request under callgrind: each target serves N, then 3N requests
## (hello, and Django for the Python servers), counted BENCH_INSTR_RUNS times; table, JSON, chart.
bench-instructions: bench-build
	$(PYTHON) bench/instructions.py --requests $(BENCH_INSTR_REQUESTS) --runs $(BENCH_INSTR_RUNS) \
	    $(if $(BENCH_INSTR_ONLY),--only $(BENCH_INSTR_ONLY))

bench-deps:
	PYTHON=$(PYTHON) bash bench/install-deps.sh

# Ours beyond the C examples and the Python face, built in release in the tree $(1) from its own
# sources: the Rust echo example, the codec micro-benchmark and the Rust sink, the C API sink
# (linked by rpath to the tree's own libfcgi_capi.so).
define bench-build-ours
cd $(1) && $(CARGO) build --release -p fcgi-core --example echo
cd $(1) && $(CARGO) build --release --manifest-path bench/codec/Cargo.toml --target-dir target/bench/cargo
mkdir -p $(1)/target/bench
cd $(1) && $(CC) $(BENCH_CFLAGS) -Iinclude bench/apps/capi_sink.c -Ltarget/release \
    -Wl,-rpath,$(1)/target/release -lfcgi_capi -pthread -o target/bench/capi_sink
endef

## Everything in release mode: the Rust echo example, the C examples, the Python wheel, the
## codec micro-benchmark and the Rust sink, the libfcgi peer and the C API sink.
bench-build: bench-deps c-examples python-install
	$(call bench-build-ours,$(CURDIR))
	$(CC) $(BENCH_CFLAGS) bench/apps/libfcgi_app.c -lfcgi -pthread -o target/bench/libfcgi_app

## The same of BENCH_BASELINE in target/bench/baseline-COMMIT, by that revision's own Makefile
## (c-examples, python-install into its venv) and sources.
bench-baseline:
	[ -d $(BENCH_BASELINE_DIR) ] || git worktree add --detach $(BENCH_BASELINE_DIR) $(BENCH_BASELINE_COMMIT)
	[ -x $(BENCH_BASELINE_DIR)/.venv/bin/python ] || $(PYTHON) -m venv --system-site-packages $(BENCH_BASELINE_DIR)/.venv
	$(MAKE) -C $(BENCH_BASELINE_DIR) c-examples python-install PYTHON=$(BENCH_BASELINE_DIR)/.venv/bin/python BENCH_BASELINE=
	$(call bench-build-ours,$(BENCH_BASELINE_DIR))
