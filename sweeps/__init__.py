"""Hyperparameter sweeps (Ray Tune executor and sweep spaces): see the sweeps issue. Only this package imports ray."""
