"""System metrics of a training run (CPU, memory, disk, network, GPU) through MLflow's own monitor."""
from __future__ import annotations

import os

# System metrics (MLflow's `system/*`: CPU, memory, disk, network, and GPU where pynvml or pyrocml is installed),
# sampled in a thread of the process that trains. Off with BENCH_SYSTEM_METRICS=0 or
# MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING=false; MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL changes the period.
SYSTEM_METRICS_INTERVAL_S = 10.0


def system_metrics_enabled() -> bool:
    off = ("0", "false", "no", "off")
    if os.environ.get("BENCH_SYSTEM_METRICS", "").strip().lower() in off:
        return False
    return os.environ.get("MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING", "").strip().lower() not in off


def start_system_metrics(run_id: str, uri: str, resumed: bool = False):
    """A started monitor that logs `system/*` metrics to `run_id` until `.finish()`; None when disabled or
    unavailable (psutil missing). Cheap: one psutil sample and one small batch write per interval."""
    import logging

    if not system_metrics_enabled():
        return None
    try:
        import psutil  # noqa: F401  (MLflow's monitors need it)
        from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor
    except ImportError:
        return None
    # MLflow says at INFO when monitoring starts and stops, and which GPU library is missing, for every run.
    logging.getLogger("mlflow.system_metrics").setLevel(logging.WARNING)

    class Monitor(SystemMetricsMonitor):
        def finish(self):
            """MLflow's own finish drops the samples of an unfinished interval (all of a short run's): log them."""
            super().finish()
            try:
                if any(m._metrics for m in self.monitors):
                    self.publish_metrics(self.aggregate_metrics())
                    self.mlflow_logger.flush()
            except Exception as exc:  # a metrics hiccup must never fail the job
                logging.getLogger("bench").debug("system metrics: %s", exc)

    try:
        monitor = Monitor(run_id, sampling_interval=SYSTEM_METRICS_INTERVAL_S, resume_logging=resumed,
                          tracking_uri=uri)
        monitor.start()
        return monitor
    except Exception as exc:
        logging.getLogger("bench").debug("system metrics unavailable: %s", exc)
        return None
