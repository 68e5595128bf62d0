"""Model soups as derived evaluations: the uniform and the greedy soup of K >= 2 finished configurations of one
(task, method, seed) are jobs of their own (lock, MLflow run nested under the sweep's parent, done marker,
selected weights), run by the job lifecycle like WiSE-FT's alphas. The ingredients are loaded once per group
and each is checked against the digest its done marker recorded; a missing or altered one fails the soup
with its name (retrain it by rerunning the sweep), never a silent soup of fewer models. The soup's weights
are kept as `selected.pt`, so WiSE-FT runs over a soup and `bench export` exports one.
"""
from __future__ import annotations

import copy
import logging

import torch

from bench.errors import BenchError
from bench.jobs.lifecycle import JobContext, JobLifecycle
from bench.methods.soup import average_methods, check_compatible, greedy
from bench.model.losses import pretraining_objective
from bench.spec.job import Job
from bench.train.body import Result
from bench.train.engine import job_params, job_tags, prepare
from bench.train.evaluate import Evaluator

log = logging.getLogger(__name__)


class _Ingredients:
    """The K finished runs of a group, their selected weights and ID-validation scores, one model and the
    evaluators, loaded once for both soups (and their WiSE-FT)."""

    def __init__(self, bases: list[Job]):
        self.bases = sorted(bases, key=lambda b: b.run_key)
        self.ready = False
        self.soups: dict[str, tuple[list[str], dict]] = {}

    def load(self) -> None:
        if self.ready:
            return
        self.done, self.states, described = {}, {}, []
        for base in self.bases:
            life = JobLifecycle(base)
            done = life.load_done()
            if done is None:
                raise BenchError(f"Soup ingredient {base.display_name} ({base.run_key}) is not finished; rerun the "
                                 "sweep to finish it, or leave it out.")
            if not life.selected_ok(done):
                raise BenchError(f"Soup ingredient {base.display_name} ({base.run_key}): selected.pt is missing or "
                                 "does not match its recorded digest; rerun the sweep to retrain it.")
            saved = torch.load(life.selected_path, map_location="cpu", weights_only=False)
            built = saved.get("built") or {}
            described.append({"run_key": base.run_key, "arch": saved.get("arch", base.model["arch"]),
                              "weights": built.get("weights"), "activation": built.get("activation")})
            self.done[base.run_key] = done
            self.states[base.run_key] = {"model": saved["state_dict"], "head": saved["bench_head"]}
            self.meta = {"arch": saved.get("arch"), "built": built}
        check_compatible(described)
        self.prep, ctx = prepare(self.bases[0], method_name="zeroshot")
        self.method = self.prep.method
        self.method.setup(ctx)
        task, rt = self.prep.task, self.bases[0].runtime

        def evaluator(sets):
            return Evaluator(sets, self.prep.loaded.eval_transform, rt.get("eval_batch_size", 256), rt.get("workers", 0),
                             self.prep.device, context=self.prep.precision.inference,
                             objective=pretraining_objective(self.prep.loaded.model))

        self.evaluator, self.val_evaluator = evaluator(task.sets), evaluator([task.val])
        self.val_key = task.val.key
        self.ready = True

    def val_score(self, run_key: str) -> float:
        return float(self.done[run_key][f"sel/{self.val_key}"])

    def classifier(self, state: dict):
        self.method.load_state_dict(copy.copy(state))
        self.method.train(False)
        return self.method.classifier()

    def soup(self, kind: str) -> tuple[list[str], dict]:
        """(run_keys in the soup, the soup's method state)."""
        if kind not in self.soups:
            keys = [b.run_key for b in self.bases]
            if kind == "uniform":
                self.soups[kind] = (keys, average_methods([self.states[k] for k in keys]))
            else:
                score = lambda state: self.val_evaluator(self.classifier(state))[self.val_key]
                chosen, state, _ = greedy([(k, self.states[k], self.val_score(k)) for k in keys], score)
                self.soups[kind] = (chosen, state)
        return self.soups[kind]


class SoupBody:
    kind = "soup"
    resumable = False

    def __init__(self, job: Job, shared: _Ingredients, parent_run_id: str | None = None):
        self.job, self.shared, self.parent = job, shared, parent_run_id

    def prepare(self) -> tuple[dict, dict]:
        sh = self.shared
        sh.load()
        job = self.job
        tags = job_tags(job, sh.prep.device)
        tags["mlflow.runName"] = f"soup {job.extra['soup']} {job.task}-{job.extra['base_method']}-s{job.seed}"
        if self.parent:
            tags["mlflow.parentRunId"] = self.parent
        params = job_params(job, sh.prep.task, sh.prep)
        params.pop("extra.ingredients", None)  # one param per ingredient below, with its digest and score
        params["soup.K"] = len(sh.bases)
        for i, base in enumerate(sh.bases):
            done = sh.done[base.run_key]
            params[f"ingredient.{i}.run_key"] = base.run_key
            params[f"ingredient.{i}.sha256"] = done.get("selected_sha256")
            params[f"ingredient.{i}.hparams"] = ", ".join(f"{k}={v}" for k, v in sorted(base.hparams.items()))
            params[f"ingredient.{i}.{sh.val_key}"] = sh.val_score(base.run_key)
        return params, tags

    def execute(self, jc: JobContext) -> Result:
        sh, kind = self.shared, self.job.extra["soup"]
        chosen, state = sh.soup(kind)
        metrics = sh.evaluator(sh.classifier(state))
        k, K = len(chosen), len(sh.bases)
        jc.set_tags({"bench.soup_k": k, "bench.soup_K": K, "bench.soup_chosen": ",".join(chosen)})
        jc.log_metrics({**metrics, "soup/k": k, "soup/K": K}, step=0)
        jc.save_selected({"state_dict": {n: v.detach().cpu() for n, v in state["model"].items()},
                          "bench_head": None if state["head"] is None else {n: v.detach().cpu() for n, v in state["head"].items()},
                          "epoch": 0, "method": "soup", "base_method": self.job.extra["base_method"],
                          "soup": kind, "ingredients": chosen, **sh.meta})
        log.info("[%s] %s soup of %d/%d: %s %.4f%s", self.job.display_name, kind, k, K, sh.val_key, metrics[sh.val_key],
                 f" ood/avg {metrics['ood/avg']:.4f}" if "ood/avg" in metrics else "")
        return Result({"sel/epoch": 0, "sel/soup/k": k, "sel/soup/K": K, **{f"sel/{n}": v for n, v in metrics.items()}})


def run_soups(bases: list[Job], tracker_factory, parent_run_id: str | None = None, kinds=None,
              wait: bool = True) -> list[tuple[Job, dict]]:
    """The soups of one group (K >= 2 finished runs of one task, method, seed); returns (soup job, summary)."""
    from bench.methods.soup import KINDS, derive_jobs

    jobs = derive_jobs(bases, kinds or KINDS)
    shared = _Ingredients(bases)
    out = []
    for job in jobs:
        life = JobLifecycle(job, tracker_factory(job))
        done = life.load_done()
        if done is not None and not life.selected_ok(done):  # the soup's own weights lost: make it again
            life.invalidate("selected.pt is missing or does not match its recorded digest")
        out.append((job, life.run(SoupBody(job, shared, parent_run_id), wait=wait)))
    return out


def soup_wiseft_jobs(soup: Job, alphas: list[float]) -> list[Job]:
    """WiSE-FT over a soup: the soup is the finetuned endpoint; the kind and the souped method ride along, so
    reports put the rows under "FT soup (greedy) + WiSE-FT"."""
    from bench.methods.wiseft import derive_jobs

    jobs = derive_jobs(soup, alphas)
    for j in jobs:
        j.extra.update({"soup": soup.extra["soup"], "soup_of": soup.extra["base_method"]})
    return jobs


def soup_groups(jobs: list[Job]) -> list[list[Job]]:
    """The finished jobs of `jobs` grouped by (experiment, task, method, seed, model), groups of K >= 2 only,
    for finetuning methods (those WiSE-FT applies to: their weights move away from one zero-shot start)."""
    from bench.methods import METHODS
    from bench.methods.soup import MIN_INGREDIENTS

    groups: dict[tuple, list[Job]] = {}
    for job in jobs:
        if job.method not in METHODS or METHODS.meta(job.method).get("derived") or not METHODS.get(job.method).wiseft:
            continue
        if JobLifecycle(job).load_done() is None:
            continue
        key = (job.experiment, job.task, job.method, job.seed, repr(sorted(job.model.items())))
        if all(j.run_key != job.run_key for j in groups.get(key, [])):
            groups.setdefault(key, []).append(job)
    return [g for g in groups.values() if len(g) >= MIN_INGREDIENTS]
