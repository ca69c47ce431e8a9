"""The HTML report opened in a real headless browser (Debian's chromium): it renders without
network, without console errors, with every section and chart; the screenshot is kept as a
test artifact in ``artifacts/test/rehearsal-report.png``."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.rehearsal.conftest import ROOT, Rehearsed

ARTIFACTS = ROOT / "artifacts" / "test"
SECTIONS = (
    "summary",
    "ladder",
    "quality",
    "latency",
    "outage",
    "cutover",
    "gate",
    "writes",
    "files",
)
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

pytestmark = pytest.mark.slow


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    assert found, "chromium is missing: scripts/ensure_system_packages.sh installs it (make test)"
    return found


def browse(html: Path, profile: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    """Chromium, headless, nothing in the background that could reach the network."""
    args = [
        chromium(),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-extensions",
        "--no-first-run",
        "--no-default-browser-check",
        f"--user-data-dir={profile}",
        "--enable-logging=stderr",
        "--v=0",
        *extra,
        html.as_uri(),
    ]
    return subprocess.run(args, capture_output=True, text=True, timeout=120, check=False)


def console_errors(stderr: str) -> list[str]:
    """Lines where the page itself complained (console messages, uncaught errors, failed
    loads), not chromium's own noise about D-Bus or GPU on a headless machine."""
    return [
        line
        for line in stderr.splitlines()
        if "CONSOLE" in line or "Uncaught" in line or "net::ERR" in line
    ]


def test_the_dom_has_every_section_and_chart_and_no_console_error(
    small_rehearsal: Rehearsed, tmp_path: Path
) -> None:
    html = small_rehearsal.workdir / "rehearsal.html"
    out = browse(html, tmp_path / "profile", "--dump-dom")
    assert out.returncode == 0, out.stderr[-2000:]
    dom = out.stdout
    for section in SECTIONS:
        assert f'id="{section}"' in dom, section
    assert dom.count("<svg") >= 6  # ladder, agreement, nDCG, latency, outage, cutover
    assert "lost writes" in dom and small_rehearsal.document["verdict"] in dom
    assert console_errors(out.stderr) == [], console_errors(out.stderr)


def test_screenshot_is_kept_as_an_artifact(small_rehearsal: Rehearsed, tmp_path: Path) -> None:
    html = small_rehearsal.workdir / "rehearsal.html"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "rehearsal-report.png"
    shot.unlink(missing_ok=True)
    out = browse(html, tmp_path / "profile", f"--screenshot={shot}", "--window-size=1400,4200")
    assert out.returncode == 0, out.stderr[-2000:]
    data = shot.read_bytes()
    assert data.startswith(PNG_MAGIC) and len(data) > 50_000  # a page with charts, not a blank
    assert console_errors(out.stderr) == []
    shutil.copy(html, ARTIFACTS / "rehearsal-report.html")


def test_no_reference_leaves_the_file(small_rehearsal: Rehearsed) -> None:
    page = (small_rehearsal.workdir / "rehearsal.html").read_text()
    assert "<script" not in page
    external = re.findall(r'(?:src|href)\s*=\s*"(?!#)([^"]+)"', page)
    assert external == []
    assert "@import" not in page and "url(" not in page
