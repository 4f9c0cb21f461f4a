# Two commands for a fresh machine: `make demo` and `make test`. Both install what they need.

CARGO ?= cargo
PYTHON ?= python3
FUZZ_SMOKE_SECONDS ?= 10

.PHONY: all build test demo deps lint rust-test python-install python-test fuzz-smoke-short e2e clean

all: build

build:
	$(CARGO) build --release --workspace --examples

# The raw-protocol suites of fcgi-core, pointed at the Python face.
PYTHON_ECHO_APP = $(PYTHON) -m fcgi_wsgi --chdir $(CURDIR)/tests/apps wsgi_echo:app

## Everything CI runs: lints, Rust unit/property/protocol tests, fuzz smoke, the Python face, end-to-end tests.
test: deps lint rust-test fuzz-smoke-short python-test e2e

deps:
	bash tests/install-deps.sh
	$(PYTHON) -m pip install -q --root-user-action=ignore -r tests/requirements.txt

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(PYTHON) -m ruff check python tests examples demo
	$(PYTHON) -m ruff format --check python tests examples demo

rust-test:
	$(CARGO) test --workspace

python-install:
	$(PYTHON) -m pip install -q --root-user-action=ignore .

python-test: python-install
	$(PYTHON) -m pytest -c tests/pytest.ini tests/python
	FCGI_TEST_APP="$(PYTHON_ECHO_APP)" $(CARGO) test -p fcgi-core --test spec --test hostile --test modes

fuzz-smoke-short:
	$(MAKE) fuzz-smoke FUZZ_SECONDS=$(FUZZ_SMOKE_SECONDS)

e2e:
	$(CARGO) build --release -p fcgi-core --example echo
	$(PYTHON) -m pytest -c tests/pytest.ini tests/e2e

## The echo example behind nginx on 127.0.0.1:8080; Ctrl-C stops everything it started.
demo:
	bash demo/demo.sh

clean:
	$(CARGO) clean

include Makefile.fuzz
