"""Data-quality checks of the OMOP warehouse in the spirit of OHDSI's Data Quality Dashboard."""

from hdhub.warehouse.dq.checks import Check, all_checks
from hdhub.warehouse.dq.report import render_html, render_json, write_report
from hdhub.warehouse.dq.run import ERROR, FAIL, NOT_APPLICABLE, PASS, CheckResult, DqReport, run_checks

__all__ = [
    "ERROR",
    "FAIL",
    "NOT_APPLICABLE",
    "PASS",
    "Check",
    "CheckResult",
    "DqReport",
    "all_checks",
    "render_html",
    "render_json",
    "run_checks",
    "write_report",
]
