"""scripts/ui_screenshots.py: it fails at once, with one line naming the fix, where it cannot work (no store, no
browser), and it takes the three screenshots of a real study in headless Chromium (Playwright's Python package
from the test extra, Debian's /usr/bin/chromium; never `playwright install`). Where either is missing the
browser test is skipped with the reason, which pytest reports (`-rs`)."""
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # an MLflow server and a browser

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "ui_screenshots.py"
CHROMIUM = Path("/usr/bin/chromium")
HAVE_PLAYWRIGHT = importlib.util.find_spec("playwright") is not None


def _run(*args, timeout=120):
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=timeout)


def _one_line(out) -> str:
    assert out.returncode == 2, out.stderr[-2000:]
    err = out.stderr.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


def test_no_store_is_one_clear_error(tmp_path):
    line = _one_line(_run("--home", str(tmp_path)))
    # Playwright is checked first: without it, that is the one line; with it, the missing store is.
    assert ("Playwright is not installed" if not HAVE_PLAYWRIGHT else "run `make demo`") in line, line


def test_missing_browser_is_one_clear_error(bench_home):
    line = _one_line(_run("--home", str(bench_home), "--browser", "/nonexistent/chromium"))
    assert ("Playwright is not installed" if not HAVE_PLAYWRIGHT else "--browser /nonexistent/chromium not found") in line


@pytest.mark.skipif(not HAVE_PLAYWRIGHT, reason="Playwright's Python package is not installed (pip install -e '.[test]')")
@pytest.mark.skipif(not CHROMIUM.is_file(), reason=f"no Chromium at {CHROMIUM} (Debian: apt-get install -y chromium)")
def test_screenshots_of_a_real_study_show_its_run(bench_home, folder_root, tmp_path):
    from PIL import Image

    from bench.jobs.lifecycle import train_one
    from bench.tracking.runs import MlflowTracker
    from helpers import make_job

    job = make_job(folder_root, "ft", epochs=1)
    train_one(job, MlflowTracker("tests"))
    out_dir = tmp_path / "shots"
    out = _run("--home", str(bench_home), "--experiment", "tests", "--out", str(out_dir), "--browser", str(CHROMIUM),
               "--settle", "1", timeout=420)
    assert out.returncode == 0, out.stderr[-3000:]
    # The runs table showed the run's name and the charts page a top-1 chart (else the script warns and saves as is).
    assert "did not appear on" not in out.stderr.replace("'cpu_utilization' did not appear", ""), out.stderr[-2000:]
    sizes = {"runs.png": (1600, 1000), "run-charts.png": (1600, 2400), "run-system.png": (1600, 1000)}
    for name, size in sizes.items():
        with Image.open(out_dir / name) as img:
            assert img.size == size, name
            lo, hi = img.convert("L").getextrema()
            assert hi - lo > 50, f"{name} is blank"  # a page was drawn, not an empty canvas
