"""Split generators of the toy world (pure numpy): lists of (Scene, label), deterministic for a seed.

toy-shift mirrors ImageNet -> V2 / Sketch / R / A: photos whose colour and background are spurious cues
for the class in training, tested on fresh photos without the cue, sketches, paintings and cartoons, and
hard scenes whose cues point at another class.
toy-cameras mirrors iWildCam: fixed-background "camera traps" with their own lighting and viewpoint,
long-tailed classes, and unseen cameras for OOD.
Each split has its own random stream (seed, world, split), so resizing one split never changes another.
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from .captions import caption
from .render import Scene, sample_scene
from .vocab import BACKGROUNDS, CLASS_KEYS, COLOURS, STYLES

K = len(CLASS_KEYS)


def _rng(seed: int, *names: str) -> np.random.Generator:
    return np.random.default_rng([seed, *(zlib.crc32(n.encode()) for n in names)])


def _balanced(rng: np.random.Generator, n: int) -> np.ndarray:
    labels = np.arange(n) % K
    rng.shuffle(labels)
    return labels


# --- toy-shift -----------------------------------------------------------------------------------

SHIFT_SPLITS = ("train", "id_val", "id_test", "v2", "sketch", "rendition", "adversarial")
SHIFT_SIZES = {"train": 1200, "id_val": 360, "id_test": 600,
               "v2": 600, "sketch": 600, "rendition": 600, "adversarial": 600}
HOME_P = 0.9  # how often a training photo shows its class's home colour (and, independently, background)


def shift_homes(seed: int = 0) -> list[tuple[str, str]]:
    """Per class: its home (colour, background). 8 colours x 6 textures: the 12 pairs are distinct."""
    rng = _rng(seed, "toy-shift", "homes")
    cols, bgs = rng.permutation(list(COLOURS)), rng.permutation(list(BACKGROUNDS))
    return [(str(cols[i % len(cols)]), str(bgs[i % len(bgs)])) for i in range(K)]


def shift_split(split: str, n: int | None = None, seed: int = 0) -> list[tuple[Scene, int]]:
    if split not in SHIFT_SPLITS:
        raise ValueError(f"unknown toy-shift split {split!r}; valid: {SHIFT_SPLITS}")
    n = SHIFT_SIZES[split] if n is None else n
    rng = _rng(seed, "toy-shift", split)
    homes = shift_homes(seed)
    out = []
    for y in _balanced(rng, n):
        key, (home_c, home_b) = CLASS_KEYS[y], homes[y]
        if split in ("train", "id_val", "id_test"):  # spurious cue: home colour/background ~90%
            colour = home_c if rng.random() < HOME_P else None
            bg = home_b if rng.random() < HOME_P else None
            s = sample_scene(rng, shape=key, colour=colour, background=bg, style="photo")
        elif split == "v2":  # fresh photos: no cue, shifted palette and exposure
            s = sample_scene(rng, shape=key, style="photo", palette_shift=(-0.05, 0.05),
                             brightness=(0.8, 1.15), scale=(0.22, 0.38), cx=(0.34, 0.66), cy=(0.34, 0.66))
        elif split == "sketch":
            s = sample_scene(rng, shape=key, style="sketch")
        elif split == "rendition":
            s = sample_scene(rng, shape=key, style=["painting", "cartoon"])
        else:  # adversarial: clutter, occlusion, extreme scale, half the time another class's cues
            decoy = homes[(y + 1 + rng.integers(K - 1)) % K] if rng.random() < 0.5 else (None, None)
            s = sample_scene(rng, shape=key, colour=decoy[0], background=decoy[1], style="photo",
                             clutter=(2, 6), occlusion=(0.1, 0.35), scale=[(0.13, 0.18), (0.42, 0.5)],
                             rotation=(-45.0, 45.0), cx=(0.35, 0.65), cy=(0.35, 0.65),
                             palette_shift=(-0.08, 0.08))
        out.append((s, int(y)))
    return out


# --- toy-cameras ---------------------------------------------------------------------------------

CAMERA_SPLITS = ("train", "id_val", "id_test", "ood_val", "ood_test")
CAMERA_SIZES = {"train": 1200, "id_val": 300, "id_test": 600, "ood_val": 300, "ood_test": 600}
N_CAMERAS = 12
CAMERA_GROUPS = {"id": tuple(range(8)), "ood_val": (8, 9), "ood_test": (10, 11)}
ZIPF_A = 0.9  # class prior ~ 1 / rank^a: the head class is ~9x the rarest (cameras skew it further)


@dataclass(frozen=True)
class Camera:
    index: int
    background: str
    background_seed: int
    brightness: float
    tint: tuple[float, float, float]
    light_angle: float
    cx: float                   # viewpoint: where objects usually appear
    cy: float
    scale: float                # distance: typical object radius
    classes: tuple[int, ...]    # the classes this camera sees
    class_p: tuple[float, ...]  # their frequencies at this camera
    volume: float               # relative number of images


def class_prior(seed: int = 0) -> np.ndarray:
    """Long-tailed (Zipf) class frequencies with a seed-dependent order of classes."""
    rng = _rng(seed, "toy-cameras", "prior")
    p = np.empty(K)
    p[rng.permutation(K)] = 1.0 / np.arange(1, K + 1) ** ZIPF_A
    return p / p.sum()


@lru_cache(maxsize=16)
def make_cameras(seed: int = 0) -> tuple[Camera, ...]:
    rng = _rng(seed, "toy-cameras", "cameras")
    prior = class_prior(seed)
    bgs = rng.permutation(list(BACKGROUNDS))
    seen: set[int] = set()
    cams = []
    for i in range(N_CAMERAS):
        cls = rng.choice(K, size=int(rng.integers(5, 9)), replace=False, p=prior)
        if i == len(CAMERA_GROUPS["id"]) - 1:  # the last training camera also sees every unseen class
            cls = np.concatenate([cls, [c for c in range(K) if c not in seen and c not in cls]]).astype(int)
        seen.update(int(c) for c in cls)
        p = prior[cls] * rng.uniform(0.5, 2.0, len(cls))  # each site skews the global tail its own way
        p = np.maximum(p / p.sum(), 0.02)
        night = rng.random() < 0.2  # dark, green-cast infrared-like camera
        tint = (0.8, 1.1, 0.8) if night else tuple(float(t) for t in rng.uniform(0.88, 1.12, 3))
        cams.append(Camera(
            index=i, background=str(bgs[i % len(bgs)]), background_seed=int(rng.integers(2**31 - 1)),
            brightness=float(rng.uniform(0.55, 0.7) if night else rng.uniform(0.8, 1.2)), tint=tint,
            light_angle=float(rng.uniform(1.1 * np.pi, 1.9 * np.pi)),
            cx=float(rng.uniform(0.4, 0.6)), cy=float(rng.uniform(0.4, 0.6)),
            scale=float(rng.uniform(0.18, 0.3)),
            classes=tuple(int(c) for c in cls), class_p=tuple(float(q) for q in p / p.sum()),
            volume=float(rng.uniform(0.5, 1.5))))
    return tuple(cams)


def camera_scene(rng: np.random.Generator, cam: Camera, label: int) -> Scene:
    occlusion = 0.0 if rng.random() < 0.8 else (0.1, 0.3)  # vegetation, the frame edge
    return sample_scene(
        rng, shape=CLASS_KEYS[label], style="photo", background=cam.background,
        background_seed=cam.background_seed, brightness=cam.brightness, tint=cam.tint,
        light_angle=cam.light_angle, cx=(cam.cx - 0.07, cam.cx + 0.07), cy=(cam.cy - 0.07, cam.cy + 0.07),
        scale=(cam.scale * 0.8, cam.scale * 1.2), rotation=(-20.0, 20.0), clutter=(0, 2), occlusion=occlusion)


def camera_split(split: str, n: int | None = None, seed: int = 0) -> list[tuple[Scene, int]]:
    if split not in CAMERA_SPLITS:
        raise ValueError(f"unknown toy-cameras split {split!r}; valid: {CAMERA_SPLITS}")
    n = CAMERA_SIZES[split] if n is None else n
    cams = make_cameras(seed)
    group = [cams[i] for i in CAMERA_GROUPS[split if split.startswith("ood") else "id"]]
    rng = _rng(seed, "toy-cameras", split)
    vol = np.array([c.volume for c in group])
    out = []
    for ci in rng.choice(len(group), size=n, p=vol / vol.sum()):
        cam = group[ci]
        y = cam.classes[int(rng.choice(len(cam.classes), p=cam.class_p))]
        out.append((camera_scene(rng, cam, y), y))
    return out


def camera_of(scene: Scene, seed: int = 0) -> int:
    """The camera index that took `scene` (cameras are identified by their background seed)."""
    return _camera_index(seed)[scene.background_seed]


@lru_cache(maxsize=16)
def _camera_index(seed: int) -> dict[int, int]:
    return {c.background_seed: c.index for c in make_cameras(seed)}


# --- pretraining corpus --------------------------------------------------------------------------

def pretrain_corpus(n: int, seed: int = 0) -> list[tuple[Scene, str]]:
    """Captioned scenes covering classes, colours, textures and styles uniformly, with no correlation
    between them, plus mild camera and hard-case variety (the toy model's "internet")."""
    rng = _rng(seed, "pretrain")
    shapes, styles = np.arange(n) % K, np.arange(n) % len(STYLES)
    rng.shuffle(shapes)
    rng.shuffle(styles)
    style_keys = list(STYLES)
    out = []
    for k, st in zip(shapes, styles):
        s = sample_scene(
            rng, shape=CLASS_KEYS[k], style=style_keys[st], scale=(0.17, 0.4), cx=(0.3, 0.7), cy=(0.3, 0.7),
            rotation=(-30.0, 30.0), palette_shift=(-0.04, 0.04), brightness=(0.75, 1.2),
            tint=tuple(rng.uniform(0.9, 1.1, 3)), clutter=[(0, 0), (0, 0), (0, 0), (1, 3)],
            occlusion=0.0 if rng.random() < 0.85 else (0.1, 0.3))
        out.append((s, caption(s, rng)))
    return out
