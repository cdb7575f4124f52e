"""The lab's start helpers that need no namespace: how many queues a command line binds.

``running_ips`` and the lab benchmark wait until every queue of ``--workers N``
is bound (a flow hashed to an unbound queue would pass unjudged), so the count
read from the command line must be right.
"""

from __future__ import annotations

import pytest

from inline_ips.lab.demo import ips_argv, queues_of
from tests.corpus import DEFAULT_RULES


@pytest.mark.parametrize(
    ("extra", "want"),
    [
        ((), 1),
        (("--bypass-after", "0"), 1),
        (("--workers", "2"), 2),
        (("--queue-maxlen", "64", "--workers", "3", "--input"), 3),
        (("--workers=4",), 4),
    ],
)
def test_queues_of_reads_workers(extra: tuple[str, ...], want: int) -> None:
    assert queues_of(ips_argv(DEFAULT_RULES, DEFAULT_RULES.with_name("eve.json"), *extra)) == want
