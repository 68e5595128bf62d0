"""scripts/ui_screenshots.py fails at once, with one line naming the fix, where it cannot work (no store, no
browser); the screenshots themselves need a browser and `make demo`'s store, so no test takes them."""
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # an MLflow server and a browser

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "ui_screenshots.py"


def _run(*args):
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=120)


def test_no_store_is_one_clear_error(tmp_path):
    out = _run("--home", str(tmp_path))
    assert out.returncode == 2
    err = out.stderr.strip().splitlines()
    assert len(err) == 1 and ("make demo" in err[0] or "Playwright is not installed" in err[0])


def test_missing_browser_is_one_clear_error(bench_home):
    out = _run("--home", str(bench_home), "--browser", "/nonexistent/chromium")
    assert out.returncode == 2
    err = out.stderr.strip().splitlines()
    assert len(err) == 1 and ("--browser /nonexistent/chromium not found" in err[0] or "Playwright" in err[0])
