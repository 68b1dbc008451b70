# The two commands of the README: `make demo` and `make test`. Both bootstrap first.
VENV ?= .venv
PY := $(VENV)/bin/python
ARTIFACTS ?= artifacts/demo-$(shell date +%Y%m%d-%H%M%S)

.PHONY: bootstrap demo test lint format clean

bootstrap:
	@./scripts/bootstrap.sh

## The HIL suite against a virtual Pi, with a summary and the artifacts' path.
demo: bootstrap
	@$(PY) -m pytest tests/hil -p no:cacheprovider -q --artifacts=$(ARTIFACTS) --junitxml=$(ARTIFACTS)/junit.xml

## The project's own tests: lint, unit, integration and the HIL suite against a virtual Pi.
test: bootstrap lint
	@$(PY) -m pytest tests -p no:cacheprovider -q --artifacts=artifacts/test --junitxml=artifacts/test/junit.xml

lint: bootstrap
	@$(VENV)/bin/ruff check .
	@$(VENV)/bin/ruff format --check .

format: bootstrap
	@$(VENV)/bin/ruff format .
	@$(VENV)/bin/ruff check --fix .

clean:
	rm -rf artifacts .pytest_cache
