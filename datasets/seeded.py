"""Per-sample seeded augmentation: the random crop (or any random transform) of sample i in epoch e is drawn from
a generator seeded by (job seed, e, i), whatever process or data worker loads it. The images a training step sees
then do not depend on the number of data workers, the world size, or whether workers persist across epochs, and
a resumed job draws exactly the crops an uninterrupted one would have."""
from __future__ import annotations

import random

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from bench.runtime.host import derive_seed


class SeededSamples(Dataset):
    """`dataset[i]` under RNGs (torch CPU, Python, NumPy) seeded from (seed, epoch, i); the caller's RNG states
    are restored afterwards. Indexed with `(epoch, i)` pairs, as `EpochIndices` yields them: the epoch travels
    with the index, so persistent workers need no message when an epoch starts."""

    def __init__(self, dataset, seed: int):
        self.dataset, self.seed = dataset, seed

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key):
        epoch, index = key
        seed = derive_seed(self.seed, "sample", epoch, index)
        py_state, np_state = random.getstate(), np.random.get_state()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            random.seed(seed)
            np.random.seed(seed)
            try:
                return self.dataset[index]
            finally:
                random.setstate(py_state)
                np.random.set_state(np_state)


class EpochIndices(Sampler):
    """`(epoch, i)` for each index `i` of `sampler`; set `epoch` before each pass (the loader iterates the
    sampler in the main process, so workers see the new epoch with the indices)."""

    def __init__(self, sampler):
        self.sampler, self.epoch = sampler, 0

    def __iter__(self):
        epoch = self.epoch
        return ((epoch, i) for i in self.sampler)

    def __len__(self) -> int:
        return len(self.sampler)
