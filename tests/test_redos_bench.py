"""The regex cost guarantee, proved by structure (no timing), and the ReDoS benchmark's harness.

What bounds a hostile payload's regex cost per packet: (1) every regex a
loaded rule set runs is an RE2 object (time linear in the subject: no
backtracking engine, no fallback), checked over the whole ET Open set and the
default rules; (2) the searches one rule makes over one buffer are capped by
``MAX_STEPS`` keyword evaluations, even for a pcre retried at every position
(counted with a real RE2 object wrapped to count its searches); (3) the
subjects are capped: an HTTP body is held up to the body limit whatever is
sent. The benchmark itself runs end to end on the default rules (only that
it writes its section is checked).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import re2

from bench import redos_bench
from inline_ips.decode.http_stream import HttpConnection, HttpLimits
from inline_ips.detect.content import MAX_STEPS, inspect
from inline_ips.rules.model import Content, Regex
from inline_ips.rules.pcre import compile_pcre, parse_pcre
from tests.corpus import CORPUS, require_corpus

ET_DIR = CORPUS / "rulesets" / "et-open-suricata5-2024-04-21"


def test_every_regex_of_the_default_rules_is_re2() -> None:
    uses = redos_bench.regexes(redos_bench.load(None))
    assert uses
    assert all(isinstance(u.compiled, re2._Regexp) for u in uses)


def test_every_regex_of_et_open_is_re2() -> None:
    require_corpus(ET_DIR)
    uses = redos_bench.regexes(redos_bench.load(ET_DIR))
    assert len(uses) > 1000  # 1,362 distinct regexes when measured
    others = [u.source for u in uses if not isinstance(u.compiled, re2._Regexp)]
    assert others == []


class CountingSearch:
    """A real RE2 regex that counts the searches made with it."""

    def __init__(self, compiled: Any) -> None:
        self.compiled = compiled
        self.searches = 0

    def search(self, subject: bytes, pos: int = 0) -> Any:
        self.searches += 1
        return self.compiled.search(subject, pos)


def test_searches_per_buffer_are_capped_by_max_steps() -> None:
    # '.' matches at every position and the relative content after it never matches, so
    # the pcre is retried one byte further each time: 20,000 searches without the cap.
    counting = CountingSearch(compile_pcre(parse_pcre('"/./s"')))
    matches = (Regex("./s", counting), Content(b"never", distance=0, within=5))
    buf = b"a" * 20_000
    assert inspect(buf, buf, matches) is None
    assert 100 < counting.searches <= MAX_STEPS


def test_http_body_held_for_inspection_is_capped() -> None:
    limits = HttpLimits()
    conn = HttpConnection(limits)
    body = b"x" * (3 * limits.request_body_limit)
    conn.feed(True, b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n" % len(body))
    for i in range(0, len(body), 1400):
        conn.feed(True, body[i : i + 1400])
    (tx,) = conn.transactions
    assert len(tx.request_body) == limits.request_body_limit


def test_bench_writes_its_section(tmp_path: Path) -> None:
    results = tmp_path / "RESULTS.md"
    results.write_text("# Results\n\n## Other\n\nkept\n", encoding="utf-8")
    assert (
        redos_bench.main(["--et", str(tmp_path / "no-such-dir"), "--top", "1", "--markdown", str(results)])
        == 0
    )
    text = results.read_text(encoding="utf-8")
    assert "## Other\n\nkept" in text
    assert redos_bench.SECTION in text
    assert "distinct regexes" in text and "0 with another engine" in text
