"""The PromQL queries of the Grafana dashboard, ready for a plain Prometheus.

Reads deploy/grafana/inline-ips-dashboard.json and returns the expression of
every target of every panel (panels inside collapsed rows too), with the
Grafana variables replaced by values Prometheus accepts: ``$__rate_interval``,
``$__interval`` and ``$__range`` by durations, ``$queue`` by ``.*`` (all
queues). Tests use it to evaluate the dashboard against a Prometheus that
scraped a running IPS. It only reads the file: it does not talk to Grafana
or Prometheus, does not check the PromQL, and does not render anything.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy/grafana/inline-ips-dashboard.json"

# $name, ${name} and ${name:format}; Grafana's older [[name]] form is not used in the dashboard.
_VARIABLE = re.compile(r"\$(?:\{(?P<braced>\w+)(?::\w+)?\}|(?P<plain>\w+))")


def _panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Every panel, depth first; a collapsed row keeps its panels inside it."""
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))


def substitute(expr: str, values: Mapping[str, str]) -> str:
    """``expr`` with each Grafana variable replaced by its value; ValueError names any unknown one."""

    def value(match: re.Match[str]) -> str:
        name = match["braced"] or match["plain"]
        if name not in values:
            raise ValueError(f"no value for Grafana variable ${name} in {expr!r}")
        return values[name]

    return _VARIABLE.sub(value, expr)


def dashboard_queries(
    path: Path | None = None,
    *,
    rate_interval: str = "30s",
    interval: str = "15s",
    time_range: str = "1h",
) -> list[tuple[str, str]]:
    """(panel title, PromQL) for every target of the dashboard, variables substituted.

    ``rate_interval``, ``interval`` and ``time_range`` stand for Grafana's
    ``$__rate_interval``, ``$__interval`` and ``$__range``; every queue is
    selected. Targets without an expression (none today) are left out.
    """
    dashboard = json.loads((path or DASHBOARD).read_text(encoding="utf-8"))
    values = {
        "__rate_interval": rate_interval,
        "__interval": interval,
        "__range": time_range,
        "queue": ".*",
    }
    queries: list[tuple[str, str]] = []
    for panel in _panels(dashboard.get("panels", [])):
        for target in panel.get("targets", []):
            expr = target.get("expr", "")
            if expr:
                queries.append((panel.get("title", ""), substitute(expr, values)))
    return queries
