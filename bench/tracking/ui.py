"""`bench ui`: an MLflow server on the project's store that prints its link only once it answers, refuses a
busy port, and never outlives the command (its whole process group stops on SIGTERM, SIGINT or exit)."""
from __future__ import annotations

import signal
import socket
import sys

from bench.errors import BenchError

READY_TIMEOUT_S = 180  # MLflow 3 takes ~35 s to answer on a 2-core machine


def runs_link(base_url: str, experiment_id: str | None) -> str:
    """The experiment's runs table in the model-training view (MLflow 3 otherwise opens on its GenAI view)."""
    if experiment_id is None:
        return f"{base_url}/#/experiments?workflowType=machine_learning"
    return f"{base_url}/#/experiments/{experiment_id}/runs?workflowType=machine_learning"


def experiment_id(uri: str, name: str | None) -> str | None:
    """The id of experiment `name` (or of the most recently created bench experiment); None if none yet."""
    from bench.tracking.store import client

    c = client(uri)
    if name:
        exp = c.get_experiment_by_name(name)
        if exp is None:
            raise BenchError(f"No MLflow experiment named '{name}' in {uri}; run `bench run` first or pick one of: "
                             + ", ".join(e.name for e in c.search_experiments()) + ".")
        _mark_model_training(c, exp)
        return exp.experiment_id
    exps = [e for e in c.search_experiments() if e.name != "Default"]
    if not exps:
        return None
    latest = max(exps, key=lambda e: e.creation_time or 0)
    _mark_model_training(c, latest)
    return latest.experiment_id


def _mark_model_training(c, exp) -> None:
    """Experiments created before bench tagged them would still open on MLflow 3's GenAI view."""
    from bench.tracking.store import EXPERIMENT_TAGS

    for key, value in EXPERIMENT_TAGS.items():
        if exp.tags.get(key) != value:
            c.set_experiment_tag(exp.experiment_id, key, value)


def check_port_free(port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            raise BenchError(f"Port {port} on 127.0.0.1 is already in use (another `bench ui` or `mlflow server`?). "
                             f"Pick another with `bench ui --port {port + 1}`, or stop what holds it "
                             f"(`lsof -i :{port}` shows it).") from None


def serve(port: int, experiment: str | None, open_browser: bool = False, ready_timeout: float = READY_TIMEOUT_S) -> int:
    from bench.tracking.column_view import view_query
    from bench.tracking.server import start_server, stop_server, wait_ready
    from bench.tracking.store import ensure_store, tracking_uri

    uri = tracking_uri()
    check_port_free(port)
    ensure_store(uri)
    exp_id = experiment_id(uri, experiment)
    base = f"http://127.0.0.1:{port}"
    proc = start_server(uri, port)  # its messages on this terminal
    previous = {sig: signal.signal(sig, _raise_interrupt) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        print(f"Starting MLflow UI for {uri} ...", flush=True)
        if not wait_ready(proc, base, ready_timeout):
            if proc.poll() is not None:
                raise BenchError(f"The MLflow server exited with code {proc.returncode} before answering; its "
                                 "messages are above.")
            raise BenchError(f"The MLflow server did not answer on {base} within {ready_timeout:.0f} s.")
        link = runs_link(base, exp_id) + view_query(uri, exp_id)  # opens on bench's headline columns
        print(f"MLflow UI ready: {link}\n(Ctrl-C stops it)", flush=True)
        if open_browser:
            import webbrowser

            webbrowser.open(link)
        return proc.wait()
    except KeyboardInterrupt:
        print("bench ui: stopping the MLflow server", file=sys.stderr)
        return 0
    finally:
        stop_server(proc)
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt
