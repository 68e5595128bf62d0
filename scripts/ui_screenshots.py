"""Screenshots of what a user sees in the MLflow UI after `make demo` (or any bench study), in headless Chromium.

    python scripts/ui_screenshots.py [--home runs] [--experiment toy] [--out DIR] [--browser /usr/bin/chromium]

Starts `bench ui` on a free port of 127.0.0.1 over BENCH_HOME's store, waits for its link, then saves:

    runs.png            the experiment's runs table as the link opens it (bench's column view applied)
    run-charts.png      one finished training run's model-metric charts (per-step loss, lr, per-epoch metrics)
    run-system.png      the same run's system-metric charts (CPU, memory; GPU where recorded)

and stops the server. Needs Playwright (`pip install playwright`) and a Chromium: Playwright's own
(`playwright install chromium`, downloaded from its CDN) or a system one (Debian: `apt-get install chromium`,
found at /usr/bin/chromium). Without either it exits 2 with one line saying what to install.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

SYSTEM_BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
# A closed network: Chromium must not try its background services (each refused connection costs time).
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]
VIEWPORT = {"width": 1600, "height": 1000}
CHARTS_VIEWPORT = {"width": 1600, "height": 2400}  # the run pages lay charts out in a tall inner scroller


def fail(message: str) -> None:
    print(f"ui_screenshots: {message}", file=sys.stderr)
    sys.exit(2)


def find_browser(explicit: str | None) -> str | None:
    """A Chromium executable: the one asked for, else None to use Playwright's own, else a system one."""
    if explicit:
        if not (Path(explicit).is_file() or shutil.which(explicit)):
            fail(f"--browser {explicit} not found.")
        return shutil.which(explicit) or explicit
    return None


def launch_browser(pw, explicit: str | None):
    path = find_browser(explicit)
    if path:
        return pw.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
    try:
        return pw.chromium.launch(args=CHROMIUM_ARGS)  # Playwright's downloaded Chromium, if installed
    except Exception as exc:  # not installed: fall back to a system Chromium
        for name in SYSTEM_BROWSERS:
            found = shutil.which(name)
            if found:
                return pw.chromium.launch(executable_path=found, args=CHROMIUM_ARGS)
        fail("no Chromium found: run `playwright install chromium`, or install a system Chromium "
             f"(Debian: apt-get install chromium) or pass --browser PATH. ({str(exc).splitlines()[0]})")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_ui(home: Path, experiment: str | None, port: int, timeout: float):
    """`bench ui` as a subprocess (its own process group); returns (process, link) once it printed the link."""
    cmd = [sys.executable, "-m", "bench", "ui", "--port", str(port)] + (["--experiment", experiment] if experiment else [])
    env = {**os.environ, "BENCH_HOME": str(home), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                            start_new_session=True)
    deadline = time.time() + timeout
    seen = []
    while time.time() < deadline:
        line = proc.stdout.readline()
        if not line:
            if proc.poll() is not None:
                fail(f"`bench ui` exited {proc.returncode}: {' '.join(seen[-5:]).strip()}")
            continue
        seen.append(line)
        match = re.search(r"(http://\S+)", line)
        if "ready" in line.lower() and match:
            return proc, match.group(1)
    stop(proc)
    fail(f"`bench ui` did not print its link within {timeout:.0f} s.")


def stop(proc) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def pick_run(home: Path, experiment_id: str) -> tuple[str, str]:
    """(run id, name) of a finished training run to show the charts of: FLYP, else FT, else any training job."""
    os.environ["BENCH_HOME"] = str(home)
    from bench.tracking.store import client

    runs = client().search_runs([experiment_id], "attributes.status = 'FINISHED' and tags.`bench.kind` = 'job'",
                                max_results=200)
    for method in ("flyp", "ft", "lpft", "lp"):
        for run in runs:
            if run.data.tags.get("bench.method") == method:
                return run.info.run_id, run.info.run_name
    if not runs:
        fail(f"experiment {experiment_id} has no finished training run to show.")
    return runs[0].info.run_id, runs[0].info.run_name


def with_view(link: str, home: Path, experiment_id: str) -> str:
    """The runs link with bench's column view (if `bench ui` printed it without)."""
    if "viewStateShareKey=" in link:
        return link
    os.environ["BENCH_HOME"] = str(home)
    from bench.tracking.column_view import view_query
    from bench.tracking.store import tracking_uri

    return link + view_query(tracking_uri(), experiment_id)


def shoot(page, url: str, path: Path, wait_text: str | None, settle_s: float, viewport=VIEWPORT) -> None:
    page.set_viewport_size(viewport)
    page.goto(url)
    if wait_text:
        try:
            page.get_by_text(wait_text, exact=False).first.wait_for(timeout=30_000)
        except Exception:
            print(f"ui_screenshots: '{wait_text}' did not appear on {url}; saving the page as it is", file=sys.stderr)
    page.wait_for_timeout(settle_s * 1000)  # charts draw after their data arrives
    page.screenshot(path=str(path), full_page=False)
    print(f"saved {path}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--home", default=os.environ.get("BENCH_HOME", "runs"), help="BENCH_HOME of the study (default: runs)")
    ap.add_argument("--experiment", help="experiment to show (default: the most recently created)")
    ap.add_argument("--out", help="folder for the PNGs (default: $BENCH_HOME/screenshots)")
    ap.add_argument("--browser", help="Chromium executable (default: Playwright's, else a system chromium)")
    ap.add_argument("--port", type=int, help="port for `bench ui` (default: a free one)")
    ap.add_argument("--timeout", type=float, default=240, help="seconds to wait for the MLflow server (default 240)")
    ap.add_argument("--settle", type=float, default=4, help="seconds to let each page draw before its screenshot")
    args = ap.parse_args(argv)

    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        fail("Playwright is not installed: pip install playwright (then `playwright install chromium`, or use a "
             "system Chromium with --browser /usr/bin/chromium).")
    home = Path(args.home).resolve()
    if not (home / "mlflow.db").is_file() and not os.environ.get("MLFLOW_TRACKING_URI"):
        fail(f"no MLflow store at {home / 'mlflow.db'}: run `make demo` (or `bench run`) first, or pass --home.")
    out = Path(args.out) if args.out else home / "screenshots"
    out.mkdir(parents=True, exist_ok=True)

    with sync_playwright() as pw:
        browser = launch_browser(pw, args.browser)  # before the server: a missing browser fails in a second
        proc, link = start_ui(home, args.experiment, args.port or free_port(), args.timeout)
        try:
            match = re.search(r"/experiments/(\w+)/", link)
            if not match:
                fail(f"no experiment in the link `bench ui` printed ({link}): has the study any runs?")
            exp_id = match.group(1)
            base = link.split("/#/")[0]
            run_id, run_name = pick_run(home, exp_id)
            page = browser.new_page(viewport=VIEWPORT)
            shoot(page, with_view(link, home, exp_id), out / "runs.png", run_name, args.settle)
            run_url = f"{base}/#/experiments/{exp_id}/runs/{run_id}"
            query = "?workflowType=machine_learning"  # else MLflow 3 shows the run inside its GenAI view
            shoot(page, f"{run_url}/model-metrics{query}", out / "run-charts.png", "top1", args.settle, CHARTS_VIEWPORT)
            shoot(page, f"{run_url}/system-metrics{query}", out / "run-system.png", "cpu_utilization", args.settle)
        finally:
            browser.close()
            stop(proc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
