"""One-line run descriptions (MLflow's `mlflow.note.content`, shown as the run's Description)."""
from __future__ import annotations


def describe(job) -> str:
    from bench.methods import METHODS

    where = f"on {job.task}, seed {job.seed}, {job.model['arch']} ({job.model.get('pretrained') or 'random init'})"
    if "alpha" in job.extra:
        a = job.extra["alpha"]
        return (f"WiSE-FT alpha {a:g}: {1 - a:g} x zero-shot + {a:g} x the {job.extra['base_method']} run's "
                f"selected weights, {where}.")
    label = METHODS.meta(job.method).get("label", job.method)
    if not METHODS.get(job.method).trains:
        return f"{label} {where}: no gradient training, evaluated once."
    hp = job.hparams
    return (f"{label} {where}: {hp['epochs']} epochs, lr {hp['lr']:g}, batch {hp['batch_size']}, warmup "
            f"{hp['warmup']} steps, wd {hp['wd']:g}; epoch chosen by '{hp.get('selection', 'best')}' on ID validation.")
