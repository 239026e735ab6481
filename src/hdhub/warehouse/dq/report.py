"""Write a data-quality run as JSON (for machines) and as one self-contained HTML page."""

from __future__ import annotations

from pathlib import Path

import jinja2
import orjson

from hdhub.warehouse.dq.run import ERROR, FAIL, NOT_APPLICABLE, PASS, DqReport

_ORDER = {FAIL: 0, ERROR: 1, PASS: 2, NOT_APPLICABLE: 3}
_env = jinja2.Environment(
    loader=jinja2.PackageLoader("hdhub.warehouse.dq", "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
)


def render_json(report: DqReport) -> bytes:
    return orjson.dumps(report.to_dict(), option=orjson.OPT_INDENT_2)


def render_html(report: DqReport) -> str:
    data = report.to_dict()
    data["checks"].sort(key=lambda c: (_ORDER[c["status"]], c["table"], c["check_name"], c["id"]))
    return _env.get_template("dq_report.html.j2").render(report=data)


def write_report(report: DqReport, directory: Path) -> tuple[Path, Path]:
    """Write ``dq-<UTC timestamp>.json`` and ``.html`` into ``directory``; returns both paths."""
    directory.mkdir(parents=True, exist_ok=True)
    stem = "dq-" + report.started.strftime("%Y%m%dT%H%M%SZ")
    json_path, html_path = directory / f"{stem}.json", directory / f"{stem}.html"
    json_path.write_bytes(render_json(report))
    html_path.write_text(render_html(report), encoding="utf-8")
    return json_path, html_path
