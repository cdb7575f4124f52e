"""Coverage-guided fuzz targets (atheris/libFuzzer) for the decoders and the rule parsers.

Does: one target per file (``fuzz_<what>.py``, each runnable as ``python -m
fuzz.fuzz_<what> [libFuzzer flags] CORPUS_DIR...``), seed corpora generated at
run time from the project's own sample traffic and, when present, the
third-party corpus beside the project (:mod:`fuzz.seeds`), and the runner
behind ``make fuzz`` and the test suite's bounded run (:mod:`fuzz.run`).

Does not: ship corpora (seeds are regenerated into the git-ignored
``fuzz/work/``), or run anything on import: a target's ``test_one_input`` can
be called directly (the tests replay inputs through it without atheris).
"""
