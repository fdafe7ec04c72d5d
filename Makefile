.PHONY: setup demo test lint unit tools clean e2e-kind lint-packaging
PY := .venv/bin/python

setup:
	hack/setup.sh

demo: setup
	.venv/bin/kubevast-demo

tools:
	hack/setup.sh --with-tools

lint: setup
	.venv/bin/ruff check .
	.venv/bin/mypy

# THE test command (README and .ci/run): lint, then every test suite.
test: setup
	hack/setup.sh --with-tools
	.venv/bin/ruff check .
	.venv/bin/mypy
	$(PY) -m pytest -p no:cacheprovider

unit: setup
	$(PY) -m pytest tests/unit -q

# End-to-end on kind, for machines with a Docker engine (not CI): see hack/e2e-kind.sh.
e2e-kind: setup
	hack/e2e-kind.sh

lint-packaging: setup
	hack/lint-packaging.sh

clean:
	rm -rf .venv .pytest_cache .mypy_cache .ruff_cache
