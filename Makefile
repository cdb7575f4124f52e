# inline-ips: the two commands a newcomer needs are `make demo` and `make test`.
# Both set up what they need first (Debian packages, .venv/) and are safe to repeat.

VENV   := .venv
PY     := $(VENV)/bin/python
CORPUS := ../shared/corpus

.PHONY: setup test lint typecheck unit demo corpus-table bench clean

setup:
	@scripts/setup.sh

lint: setup
	$(VENV)/bin/ruff check inline_ips tests bench scripts

typecheck: setup
	$(VENV)/bin/mypy

unit: setup
	$(VENV)/bin/pytest -q

# The whole suite: what CI runs (.ci/run calls exactly this).
test: setup
	$(VENV)/bin/ruff check inline_ips tests bench scripts
	$(VENV)/bin/mypy
	$(VENV)/bin/pytest -q

# Replays the attack captures through the engine with the default rules and
# shows what would have been dropped and blocked, and why.
demo: setup
	@$(PY) scripts/demo.py

# Regenerates the README's table of corpus captures and the alerts they raise.
corpus-table: setup
	$(PY) scripts/corpus_table.py --update README.md

bench: setup
	$(PY) -m bench.engine_bench --markdown bench/RESULTS.md

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache *.egg-info
