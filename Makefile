# inline-ips: the two commands a newcomer needs are `make demo` and `make test`.
# Both set up what they need first (Debian packages, .venv/) and are safe to repeat.

VENV   := .venv
PY     := $(VENV)/bin/python
CORPUS := ../shared/corpus

.PHONY: setup test lint typecheck unit demo replay-demo corpus-table bench bench-instructions bench-lab bench-memory bench-redos fuzz clean

setup:
	@scripts/setup.sh

lint: setup
	$(VENV)/bin/ruff check inline_ips tests bench scripts fuzz

typecheck: setup
	$(VENV)/bin/mypy

unit: setup
	$(VENV)/bin/pytest -q

# The whole suite: what CI runs (.ci/run calls exactly this).
test: setup
	$(VENV)/bin/ruff check inline_ips tests bench scripts fuzz
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

# Instructions per judged packet, counted by callgrind (a few minutes; + ET Open when the
# corpus is there, about ten more): the figure that repeats between runs on a noisy machine.
bench-instructions: setup
	$(PY) -m bench.instructions --markdown bench/RESULTS.md

# Inline in the namespace lab (root; three rounds, about 20 minutes): replaces only its own
# section of bench/RESULTS.md (each benchmark keeps the others' sections).
bench-lab: setup
	$(PY) -m bench.lab_bench --markdown bench/RESULTS.md

# RSS under a spoofed flood of 1,000,000 sources and flows (default rules, then + ET Open
# when the corpus is there); replaces only its own section of bench/RESULTS.md.
bench-memory: setup
	$(PY) -m bench.memory_bench --markdown bench/RESULTS.md --svg bench/memory.svg

# Every regex of the default rules + ET Open against pathological payloads, per regex and
# per packet through the engine (about a minute): replaces only its own section.
bench-redos: setup
	$(PY) -m bench.redos_bench --markdown bench/RESULTS.md

# Coverage-guided fuzzing (atheris), the targets one after another, FUZZ_SECONDS each
# (600 by default: an hour in all). Corpus, findings and logs stay in fuzz/work/.
FUZZ_SECONDS ?= 600
fuzz: setup
	$(PY) -m fuzz.run --seconds $(FUZZ_SECONDS)

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache *.egg-info
