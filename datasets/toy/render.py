"""Deterministic procedural renderer of the toy world: a Scene in, a small RGB image out.

numpy + Pillow only. The same Scene always gives the same bytes: every random choice comes from
generators seeded by `scene.seed` (object, clutter, noise) and `scene.background_seed` (texture and its
colours, so a "camera" can fix its background while objects vary). Drawn at 2x and box-downsampled
for antialiasing.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from bench.errors import unknown_name

from .captions import CAPTION_FORMS, caption, caption_form, caption_variants  # noqa: F401 (re-export)
from .shapes import place
from .styles import Geom, background, bg_colours, hsv, paint, pattern, shift_hue
from .vocab import BACKGROUNDS, CLASS_KEYS, CLASSES, CLASSNAMES, COLOURS, STYLES  # noqa: F401

COLOUR_KEYS = list(COLOURS)


@dataclass(frozen=True)
class Scene:
    shape: str                  # class key (vocab.CLASSES)
    colour: str                 # vocab.COLOURS key (not visible in sketches)
    background: str             # vocab.BACKGROUNDS key
    style: str                  # photo | sketch | painting | cartoon
    cx: float = 0.5             # object centre, fraction of the image side
    cy: float = 0.5
    scale: float = 0.3          # object radius, fraction of the image side
    rotation: float = 0.0       # degrees, counter-clockwise
    seed: int = 0
    clutter: int = 0            # number of small distractor shapes behind the object
    occlusion: float = 0.0      # fraction of the object's extent hidden by an occluder
    palette_shift: float = 0.0  # hue turn applied to every colour (fraction of the wheel)
    brightness: float = 1.0     # camera exposure
    tint: tuple[float, float, float] = (1.0, 1.0, 1.0)  # camera colour cast (RGB gains)
    background_seed: int | None = None  # None: derived from `seed`
    light_angle: float | None = None    # radians, direction towards the light; None: from `seed`


def _validate(scene: Scene) -> None:
    for kind, value, valid in (("shape", scene.shape, CLASS_KEYS), ("colour", scene.colour, COLOUR_KEYS),
                               ("background", scene.background, list(BACKGROUNDS)),
                               ("style", scene.style, list(STYLES))):
        if value not in valid:
            raise unknown_name(f"toy {kind}", value, valid)


def _occluder(polys, frac: float, r: float, rng: np.random.Generator):
    """A box entering from one side that hides about `frac` of the object's extent."""
    pts = np.concatenate([np.asarray(p) for p, hole in polys if not hole])
    (x0, y0), (x1, y1), m = pts.min(0), pts.max(0), 0.3 * r
    side = int(rng.integers(4))
    box = [(x0 - m, y0 - m, x0 + frac * (x1 - x0), y1 + m), (x1 - frac * (x1 - x0), y0 - m, x1 + m, y1 + m),
           (x0 - m, y0 - m, x1 + m, y0 + frac * (y1 - y0)), (x0 - m, y1 - frac * (y1 - y0), x1 + m, y1 + m)][side]
    a, b, c, d = (float(t) for t in box)
    return [([(a, b), (c, b), (c, d), (a, d)], False)]


def render(scene: Scene, size: int = 64) -> Image.Image:
    """Draw `scene` as a `size` x `size` RGB image."""
    _validate(scene)
    S = 2 * size
    rng = np.random.default_rng([scene.seed, 0])
    bseed = scene.seed if scene.background_seed is None else scene.background_seed
    bg_rng = np.random.default_rng([bseed, 1])
    c0, c1 = bg_colours(bg_rng, scene.palette_shift)
    img = background(scene.style, pattern(scene.background, bg_rng, S), c0, c1, bg_rng)

    a = rng.uniform(1.1 * np.pi, 1.9 * np.pi)  # drawn even when fixed, so other draws do not move
    a = a if scene.light_angle is None else scene.light_angle
    light = (float(np.cos(a)), float(np.sin(a)))
    style = scene.style
    for _ in range(scene.clutter):  # distractors: other shapes, small, behind the object
        shape, col = CLASS_KEYS[rng.integers(len(CLASS_KEYS))], COLOUR_KEYS[rng.integers(len(COLOUR_KEYS))]
        r = min(scene.scale, 0.3) * S * rng.uniform(0.22, 0.38)  # small even around a huge object
        x, y = rng.uniform(0.1, 0.9, 2) * S
        polys = place(shape, x, y, r, rng.uniform(-180, 180))
        paint(style, img, polys, shift_hue(COLOURS[col].rgb, scene.palette_shift), Geom(x, y, r), light, rng)

    cx, cy, r = scene.cx * S, scene.cy * S, scene.scale * S
    polys = place(scene.shape, cx, cy, r, scene.rotation)
    rgb = shift_hue(COLOURS[scene.colour].rgb, scene.palette_shift)
    paint(style, img, polys, rgb, Geom(cx, cy, r), light, rng)
    if scene.occlusion > 0:
        grey = hsv(rng.uniform(0.05, 0.12), rng.uniform(0.0, 0.3), rng.uniform(0.3, 0.6))
        occ = _occluder(polys, scene.occlusion, r, rng)
        extra = {"opaque": True} if style == "sketch" else {}  # a sketched occluder still hides the object
        paint(style, img, occ, grey, Geom(cx, cy, r), light, rng, **extra)

    img = img[0::2] + img[1::2]  # 2x2 box downsample (faster than reshape().mean())
    small = (img[:, 0::2] + img[:, 1::2]) * (0.25 * scene.brightness * np.asarray(scene.tint, np.float32))
    if style == "photo":  # sensor noise
        small += rng.standard_normal(small.shape, dtype=np.float32) * 0.02
    return Image.fromarray((np.clip(small, 0.0, 1.0) * 255 + 0.5).astype(np.uint8))


# --- sampling -----------------------------------------------------------------------------------

_CHOICES = {"shape": CLASS_KEYS, "colour": COLOUR_KEYS, "background": list(BACKGROUNDS), "style": list(STYLES)}
_RANGES = {"cx": (0.38, 0.62), "cy": (0.38, 0.62), "scale": (0.24, 0.36), "rotation": (-25.0, 25.0),
           "occlusion": 0.0, "palette_shift": 0.0, "brightness": 1.0, "clutter": 0, "light_angle": None}
_FIXED = {"tint": (1.0, 1.0, 1.0), "background_seed": None}


def _choose(rng: np.random.Generator, spec, kind: str) -> str:
    """None: uniform over all; a name: fixed; a list: uniform over it; a dict: weighted."""
    valid = _CHOICES[kind]
    if spec is None:
        spec = valid
    if isinstance(spec, str):
        spec = [spec]
    names = list(spec)
    for n in names:
        if n not in valid:
            raise unknown_name(f"toy {kind}", n, valid)
    if isinstance(spec, dict):
        w = np.asarray([spec[n] for n in names], np.float64)
        return names[int(rng.choice(len(names), p=w / w.sum()))]
    return names[int(rng.integers(len(names)))]


def _draw(rng: np.random.Generator, spec, integer: bool = False):
    """A number: fixed; (lo, hi): uniform (inclusive ints); a list of (lo, hi): one range, then uniform."""
    if spec is None or np.isscalar(spec):
        return spec
    if isinstance(spec[0], (tuple, list)):
        spec = spec[int(rng.integers(len(spec)))]
    lo, hi = spec
    return int(rng.integers(lo, hi + 1)) if integer else float(rng.uniform(lo, hi))


def sample_scene(rng: np.random.Generator, **constraints) -> Scene:
    """Draw a Scene; keyword constraints restrict or weight any field (see `_choose` and `_draw`).

    e.g. sample_scene(rng, shape="star", style=["painting", "cartoon"], colour={"red": 9, "blue": 1},
    scale=[(0.12, 0.17), (0.46, 0.56)], clutter=(2, 6), tint=(1.0, 0.9, 0.8), background_seed=7)
    """
    valid = list(_CHOICES) + list(_RANGES) + list(_FIXED)
    for k in constraints:
        if k not in valid:
            raise unknown_name("toy scene constraint", k, valid)
    kw = {k: _choose(rng, constraints.get(k), k) for k in _CHOICES}
    for k, default in _RANGES.items():
        kw[k] = _draw(rng, constraints.get(k, default), integer=(k == "clutter"))
    kw.update({k: constraints.get(k, default) for k, default in _FIXED.items()})
    kw["tint"] = tuple(float(t) for t in kw["tint"])
    kw["seed"] = int(rng.integers(2**31 - 1))
    return Scene(**kw)
