"""The rehearsal's reports: ``rehearsal.json`` (CONTRACT §6 keys, then details) and a
self-contained ``rehearsal.html`` with plots (``html.py``, charts drawn by ``svg.py``).

May import the rest of `shadowswap.rehearsal` and the foundation.
"""

from __future__ import annotations

import json
from pathlib import Path

from shadowswap.errors import WriteError
from shadowswap.fileio import atomic_write
from shadowswap.rehearsal.report.html import CutoverBar, ReportInputs, render

__all__ = ["CutoverBar", "ReportInputs", "render", "write_reports"]


def write_reports(inputs: ReportInputs, json_path: Path, html_path: Path) -> None:
    """Write both files (each whole, then renamed into place)."""
    document = json.dumps(inputs.result.as_dict(), indent=2, ensure_ascii=False, default=str)
    for path, text in ((json_path, document + "\n"), (html_path, render(inputs))):
        try:
            atomic_write(path, text.encode("utf-8"))  # a temporary file: never through a link
        except OSError as exc:
            raise WriteError(str(path), str(exc)) from exc
