"""Hyperparameter sweeps and executors (installed as `bench.sweeps`; see sweeps/README.md).

space.py         sweep spaces (YAML) and the deterministic, pre-enumerating sampler
sweep.py         a (suite, task, method) sweep as plain Jobs, its key and saved spec
state.py         job states (pending, incomplete, stopped, done) and cleaning
launch.py        executors: local (this process) and ray; MLflow parent run and final statuses
ray_executor.py  Ray Tune trials: the only module of bench that imports Ray
cli.py           `bench sweep`, `bench status`, `bench clean`
"""
