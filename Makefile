# inline-ips: the two commands a newcomer needs are `make demo` and `make test`.
# Both set up what they need first (Debian packages, .venv/) and are safe to repeat.

VENV   := .venv
PY     := $(VENV)/bin/python
CORPUS := ../shared/corpus

.PHONY: setup test lint typecheck unit demo replay-demo corpus-table bench bench-lab clean

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

# The lab demo (root): namespaces for a client, an attacker, a router running
# inline-ips and a server; real attacks beside benign traffic; torn down after.
demo: setup
	@$(VENV)/bin/inline-ips lab demo

# The same attacks and the corpus captures, replayed offline (no root needed
# once set up).
replay-demo: setup
	@$(PY) scripts/demo.py

# Regenerates the README's table of corpus captures and the alerts they raise.
corpus-table: setup
	$(PY) scripts/corpus_table.py --update README.md

bench: setup
	$(PY) -m bench.engine_bench --markdown bench/RESULTS.md

# Inline in the namespace lab (root, about 6 minutes): replaces only its own section
# of bench/RESULTS.md (each benchmark keeps the others' sections).
bench-lab: setup
	$(PY) -m bench.lab_bench --markdown bench/RESULTS.md

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache *.egg-info
