# The two commands of the README: `make demo` and `make test`. Both bootstrap first.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(shell date +%Y%m%d-%H%M%S)
ARTIFACTS ?= artifacts/demo-$(STAMP)

.PHONY: bootstrap demo test bench lint format clean

bootstrap:
	@./scripts/bootstrap.sh

## The HIL suite against a virtual Pi, with a summary, the artifacts and the HTML report's path
## (the report is rendered whatever the outcome; the suite's exit status is kept).
demo: bootstrap
	@$(PY) -m pytest tests/hil -p no:cacheprovider -q --artifacts=$(ARTIFACTS) --junitxml=$(ARTIFACTS)/junit.xml; \
	status=$$?; $(VENV)/bin/rig report $(ARTIFACTS); exit $$status

## The project's own tests: lint, unit, integration and the HIL suite against a virtual Pi.
test: bootstrap lint
	@$(PY) -m pytest tests -p no:cacheprovider -q --artifacts=artifacts/test --junitxml=artifacts/test/junit.xml

## The benchmarks (benchmarks/): each prints its figures as JSON and keeps them in benchmarks/results/.
BENCHMARKS := ssh_overhead deploy_speed boot_time stimulus_latency fanout signal_detection suite_time
bench: bootstrap
	@for b in $(BENCHMARKS); do echo "== $$b"; $(PY) -m benchmarks.$$b || exit 1; done

lint: bootstrap
	@$(VENV)/bin/ruff check .
	@$(VENV)/bin/ruff format --check .

format: bootstrap
	@$(VENV)/bin/ruff format .
	@$(VENV)/bin/ruff check --fix .

clean:
	rm -rf artifacts .pytest_cache
