# callbill — the two commands a newcomer types: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
CALLBILL := $(VENV)/bin/callbill

.PHONY: demo test unit lint up down status bench bench-e2e bench-scale chaos install constraints clean

$(VENV)/.installed: pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "callbill needs Python 3.11+"'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e '.[test,dev,lint,rocksdb,bench]'
	$(PY) -m pip install -q -c constraints.txt --no-deps rinoh-typeface-notosanscjk  # the CJK font file alone
	touch $@

install: $(VENV)/.installed

constraints: install     ## pin every installed package again (after a change to pyproject.toml)
	(echo "# Every package pinned, for reproducible installs: pip install -c constraints.txt ."; \
	 echo "# Regenerate after a dependency change: make constraints"; \
	 $(PY) -m pip freeze --exclude-editable) > constraints.txt

lint: install            ## the import rules (pyproject.toml [tool.importlinter])
	$(VENV)/bin/lint-imports

demo: install            ## stack up, a real worker, the samples through the pipeline, a report
	$(CALLBILL) demo

TEST_WORKERS ?= 2

test: install            ## the whole suite, TEST_WORKERS processes sharing one Kafka (started here unless CALLBILL_KAFKA_BOOTSTRAP is set)
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile

unit: install            ## the fast tiers: pure rules and every stage in process (no broker), under a minute
	$(PY) -m pytest -q tests/unit tests/stages

up: install              ## local Kafka (KRaft), SeaweedFS S3 and the SMTP sink, under ./var
	$(CALLBILL) dev up

down: install
	$(CALLBILL) dev down

status: install
	$(CALLBILL) dev status

bench: install           ## throughput beside raw aiokafka ceilings; results in bench/results/
	$(PY) -m bench.ingest
	$(PY) -m bench.billing
	$(PY) -m bench.documents

bench-e2e: install       ## 20,000 interactions through the whole pipeline, 1 and 2 workers, and 100/s
	$(PY) -m bench.e2e

bench-scale: install     ## the ledger with 1,000,000 interactions on RocksDB: RSS, lookups/s, recovery
	$(PY) -m bench.scale

chaos: install           ## 5,000 interactions with kills, a broker restart, ERP/S3/SMTP outages; then checks
	$(PY) -m bench.chaos

clean:
	-$(CALLBILL) dev down
	rm -rf $(VENV) var callbill.egg-info
