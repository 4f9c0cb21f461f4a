# `make bench`: the benchmark suite (bench/README.md). Included from the Makefile; it uses that
# file's PYTHON, CARGO and CC and its c-examples and python-install targets.
#
#   make bench                      # every workload against every target, 3 rounds of 10 s (~15 min)
#   make bench BENCH_QUICK=1        # a smoke run: 1 round of 2 s, 128 MiB transfers (~2 min)
#   make bench BENCH_ONLY=hello,codec BENCH_ROUNDS=5
#   make bench-profile              # perf and py-spy on our Python and C hello targets under load

BENCH_QUICK ?=
BENCH_IS_QUICK = $(filter-out 0 no false,$(BENCH_QUICK))
BENCH_ROUNDS ?= $(if $(BENCH_IS_QUICK),1,3)
BENCH_DURATION ?= $(if $(BENCH_IS_QUICK),2,10)
BENCH_THREADS ?= 4
BENCH_CONNECTIONS ?= 32
BENCH_ONLY ?=
BENCH_PROFILE_SECONDS ?= 10
BENCH_CFLAGS ?= -std=c11 -D_POSIX_C_SOURCE=200809L -Wall -Wextra -Werror -O2
BENCH_ARGS = --rounds $(BENCH_ROUNDS) --duration $(BENCH_DURATION) --threads $(BENCH_THREADS) \
	--connections $(BENCH_CONNECTIONS) $(if $(BENCH_IS_QUICK),--quick) $(if $(BENCH_ONLY),--only $(BENCH_ONLY))

.PHONY: bench bench-deps bench-build bench-profile

## Every workload against every target in one run; the table also lands in bench/results/.
bench: bench-build
	$(PYTHON) bench/run.py $(BENCH_ARGS)

## Our Python and C hello targets under wrk, profiled (bench/results/profile-*/report.txt).
bench-profile: bench-build
	BENCH_INSTALL_PROFILERS=1 PYTHON=$(PYTHON) bash bench/install-deps.sh
	$(PYTHON) bench/run.py --threads $(BENCH_THREADS) --profile $(BENCH_PROFILE_SECONDS)

bench-deps:
	PYTHON=$(PYTHON) bash bench/install-deps.sh

## Everything in release mode: the Rust echo example, the C examples, the Python wheel, the
## codec micro-benchmark and the Rust sink, the libfcgi peer and the C API sink.
bench-build: bench-deps c-examples python-install
	$(CARGO) build --release -p fcgi-core --example echo
	$(CARGO) build --release --manifest-path bench/codec/Cargo.toml --target-dir target/bench/cargo
	mkdir -p target/bench
	$(CC) $(BENCH_CFLAGS) bench/apps/libfcgi_app.c -lfcgi -pthread -o target/bench/libfcgi_app
	$(CC) $(BENCH_CFLAGS) -Iinclude bench/apps/capi_sink.c -Ltarget/release -Wl,-rpath,$(CURDIR)/target/release \
	    -lfcgi_capi -pthread -o target/bench/capi_sink
