# Two commands for a fresh machine: `make demo` and `make test`. Both install what they need.

CARGO ?= cargo
PYTHON ?= python3
FUZZ_SMOKE_SECONDS ?= 10

PREFIX ?= /usr/local

.PHONY: all build test demo deps lint rust-test python-install python-test fuzz-smoke-short e2e bench-test clean \
	capi c-examples cargo-c install-capi compat compat-examples install-compat dist packaging-test c-install-test

all: build

build:
	$(CARGO) build --release --workspace --examples

# The raw-protocol suites of fcgi-core, pointed at the Python face.
PYTHON_ECHO_APP = $(PYTHON) -m fcgi_wsgi --chdir $(CURDIR)/tests/apps wsgi_echo:app
ASGI_ECHO_APP = $(PYTHON) -m fcgi_wsgi --chdir $(CURDIR)/tests/apps --interface asgi asgi_echo:app

## Everything CI runs: lints, Rust unit/property/protocol tests, fuzz smoke, the Python face, end-to-end tests,
## the benchmark's tools, packaging.
test: deps lint rust-test fuzz-smoke-short python-test e2e bench-test packaging-test

deps:
	bash tests/install-deps.sh
	bash tests/install-cargo-c.sh start
	$(PYTHON) -m pip install -q --root-user-action=ignore -r tests/requirements.txt

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(PYTHON) -m ruff check python tests examples demo bench
	$(PYTHON) -m ruff format --check python tests examples demo bench

rust-test:
	$(CARGO) test --workspace

python-install:
	$(PYTHON) -m pip install -q --root-user-action=ignore .

python-test: python-install
	$(PYTHON) -m pytest -c tests/pytest.ini tests/python
	FCGI_TEST_APP="$(PYTHON_ECHO_APP)" $(CARGO) test -p fcgi-core --test spec --test hostile --test modes --test trust --test reload
	FCGI_TEST_APP="$(ASGI_ECHO_APP)" $(CARGO) test -p fcgi-core --test spec --test hostile --test modes --test trust --test reload

fuzz-smoke-short:
	$(MAKE) fuzz-smoke FUZZ_SECONDS=$(FUZZ_SMOKE_SECONDS)

e2e:
	$(CARGO) build --release -p fcgi-core --example echo
	$(PYTHON) -m pytest -c tests/pytest.ini tests/e2e

## The benchmark's tools: callgrind's totals, the chart writer, and bench-instructions on the Rust
## echo with N=20 under callgrind (a few seconds; tests/bench).
bench-test:
	$(CARGO) build --release -p fcgi-core --example echo
	$(PYTHON) -m pytest -c tests/pytest.ini tests/bench

## The C library for development, uninstalled: target/release/libfcgi_capi.{so,a} (soname
## libfcgi_capi.so.0, linked under that name beside it for the loader); the header is include/fcgi.h.
capi:
	$(CARGO) build --release -p fcgi-capi
	ln -sf libfcgi_capi.so target/release/libfcgi_capi.so.0

## examples/c/*.c built into target/c-examples/
c-examples: capi
	mkdir -p target/c-examples
	for example in hello echo threaded; do \
	    $(CC) -std=c11 -D_POSIX_C_SOURCE=200809L -Wall -Wextra -Werror -O2 -Iinclude examples/c/$$example.c \
	        -Ltarget/release -Wl,-rpath,$(CURDIR)/target/release -lfcgi_capi -pthread -o target/c-examples/$$example || exit 1; \
	done

## Installing the C libraries is cargo-c's (`cargo cinstall`, configured by [package.metadata.capi]
## in each crate's Cargo.toml): lib/libNAME.so.VERSION, its soname link .so.0 and its link-time
## name .so, lib/libNAME.a, the headers, lib/pkgconfig/NAME.pc; under $(DESTDIR)$(PREFIX).
LIBDIR ?= $(PREFIX)/lib
CINSTALL = $(CARGO) cinstall --release --prefix $(PREFIX) --libdir $(LIBDIR) $(if $(DESTDIR),--destdir $(DESTDIR))

cargo-c:
	@bash tests/install-cargo-c.sh wait

## libfcgi_capi, include/fcgi.h and fcgi-capi.pc under $(DESTDIR)$(PREFIX)
install-capi: cargo-c
	$(CINSTALL) -p fcgi-capi
	[ -n "$(DESTDIR)" ] || ldconfig

## libfcgi drop-in for development, uninstalled: target/release/libfcgi_compat.{so,a} (soname
## libfcgi_compat.so.0, linked under that name beside it) for include/compat/
compat:
	$(CARGO) build --release -p fcgi-compat
	ln -sf libfcgi_compat.so target/release/libfcgi_compat.so.0

## examples/compat/*.c built into target/compat-examples/, and echo-static for the e2e tests
compat-examples: compat
	mkdir -p target/compat-examples
	for example in echo threaded stdio filter; do \
	    $(CC) -std=c11 -D_POSIX_C_SOURCE=200809L -Wall -Wextra -Werror -O2 -Iinclude/compat examples/compat/$$example.c \
	        -Ltarget/release -Wl,-rpath,$(CURDIR)/target/release -lfcgi_compat -pthread -o target/compat-examples/$$example || exit 1; \
	done
	$(CC) -std=c11 -D_POSIX_C_SOURCE=200809L -Wall -Wextra -Werror -O2 -Iinclude/compat examples/compat/echo.c \
	    target/release/libfcgi_compat.a -pthread -ldl -lm -o target/compat-examples/echo-static

## libfcgi_compat, its headers under include/fcgi-compat/ (not to shadow libfcgi-dev's) and
## fcgi-compat.pc (whose Cflags point there) under $(DESTDIR)$(PREFIX)
install-compat: cargo-c
	$(CINSTALL) -p fcgi-compat
	[ -n "$(DESTDIR)" ] || ldconfig

## dist/: the sdist and one abi3 wheel (cp39-abi3, manylinux2014_x86_64) for every CPython 3.9+.
## maturin links with zig against glibc 2.17; the tools live in their own venv, not in $(PYTHON).
## The version is the workspace's, in Cargo.toml ([workspace.package]); pyproject.toml reads it.
DIST_VENV ?= $(CURDIR)/target/dist-venv
DIST_TOOLS = "maturin>=1.9.4,<2" ziglang auditwheel twine

$(DIST_VENV)/bin/maturin:
	$(PYTHON) -m venv $(DIST_VENV)
	$(DIST_VENV)/bin/python -m pip install -q --upgrade pip
	$(DIST_VENV)/bin/python -m pip install -q $(DIST_TOOLS)

dist: $(DIST_VENV)/bin/maturin
	rm -rf dist
	$(DIST_VENV)/bin/maturin sdist --out dist
	PATH=$(DIST_VENV)/bin:$$PATH $(DIST_VENV)/bin/maturin build --release --strip --zig \
	    --compatibility manylinux2014 --interpreter $(DIST_VENV)/bin/python --out dist
	$(DIST_VENV)/bin/auditwheel show dist/*.whl
	$(DIST_VENV)/bin/twine check --strict dist/*

## The wheel in a fresh venv of each pyenv CPython 3.9-3.13 with no Rust on PATH, running
## tests/python's PEP 3333 suite and Django page; the sdist building a working wheel; and
## c-install-test's C libraries.
packaging-test: dist
	$(PYTHON) -m pytest -c tests/pytest.ini tests/packaging --durations=0

## The C libraries installed by `make install-capi install-compat` under a scratch DESTDIR, and C
## programs (examples/c/hello.c, libfcgi's examples/compat/echo.c and stdio.c) built against that
## tree with pkg-config alone, shared and static, run as CGI (tests/packaging/test_c_install.py).
c-install-test:
	$(PYTHON) -m pytest -c tests/pytest.ini tests/packaging/test_c_install.py --durations=0

## demo/app.py served by fcgi_wsgi behind nginx on 127.0.0.1:8080; Ctrl-C stops everything it started.
demo:
	bash demo/demo.sh

clean:
	$(CARGO) clean

include Makefile.fuzz
include bench/bench.mk
