"""Background textures and the four drawing styles of the toy world.

Images are float32 arrays (S, S, 3) in [0, 1] at twice the output size; `render` downsamples them.
A style is a background painter plus an object painter, so distractors and occluders are drawn in the
same style as the object. Styles change colour, texture and edges (the way ImageNet-Sketch/-R differ
from photos) but never the silhouette, so the class stays readable in every style.
"""
from __future__ import annotations

import colorsys
from functools import lru_cache
from typing import NamedTuple

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

class Geom(NamedTuple):
    cx: float  # object centre and radius, in pixels
    cy: float
    r: float
    S: int = 0  # side of the full (2x) image


@lru_cache(maxsize=8)
def _grid(S: int) -> tuple[np.ndarray, np.ndarray]:
    c = (np.arange(S, dtype=np.float32) + 0.5) / S
    X, Y = np.meshgrid(c, c)
    X.flags.writeable = Y.flags.writeable = False  # shared by every call
    return X, Y


def hsv(h: float, s: float, v: float) -> np.ndarray:
    return np.array(colorsys.hsv_to_rgb(h % 1.0, min(max(s, 0.0), 1.0), min(max(v, 0.0), 1.0)), np.float32)


def shift_hue(rgb255, shift: float) -> np.ndarray:
    """0-255 RGB -> float RGB in [0, 1] with the hue turned by `shift` (a fraction of the wheel)."""
    h, s, v = colorsys.rgb_to_hsv(*(np.asarray(rgb255, np.float32) / 255))
    return hsv(h + shift, s, v)


def _upsample(a: np.ndarray, S: int) -> np.ndarray:
    """Bilinear upsampling of a small float map: cheap smooth noise and blur."""
    return np.asarray(Image.fromarray(a.astype(np.float32)).resize((S, S), Image.BILINEAR))


def pattern(kind: str, rng: np.random.Generator, S: int) -> np.ndarray:
    """Texture in [0, 1] (S, S): 0 picks the first background colour, 1 the second."""
    X, Y = _grid(S)
    a, f, ph = rng.uniform(0, np.pi), rng.uniform(4.0, 8.0), rng.uniform(0, 1)
    u = X * np.cos(a) + Y * np.sin(a)
    v = Y * np.cos(a) - X * np.sin(a)
    if kind == "plain":
        p = 0.3 * Y
    elif kind == "striped":
        p = (u * f + ph) % 1.0 < 0.5
    elif kind == "dotted":
        du, dv = (u * f * 1.3 + ph) % 1.0 - 0.5, (v * f * 1.3 + ph) % 1.0 - 0.5
        p = du * du + dv * dv < 0.07
    elif kind == "checkered":
        p = (np.floor(u * f * 0.8 + ph) + np.floor(v * f * 0.8 + ph)) % 2
    elif kind == "noisy":
        p = 0.6 * _upsample(rng.random((6, 6)), S) + 0.4 * rng.random((S, S), dtype=np.float32)
    elif kind == "wavy":
        p = (v * f + 0.09 * np.sin(2 * np.pi * (u * 2.5 + ph))) % 1.0 < 0.5
    else:
        raise ValueError(kind)
    return np.asarray(p, np.float32)


def bg_colours(rng: np.random.Generator, shift: float) -> tuple[np.ndarray, np.ndarray]:
    """Two muted background colours, kept unsaturated so object colour stays the salient cue."""
    h, s, v = rng.random(), rng.uniform(0.05, 0.3), rng.uniform(0.62, 0.9)
    c0 = hsv(h + shift, s, v)
    c1 = hsv(h + rng.uniform(-0.12, 0.12) + shift, s * rng.uniform(0.6, 1.6), v - rng.uniform(0.2, 0.35))
    return c0, c1


def _streaks(rng: np.random.Generator, S: int) -> np.ndarray:
    """Brush-stroke texture: noise stretched along a random direction (made at half size: it is smooth)."""
    h = S // 2
    L = int(h * 1.42) + 2
    a = Image.fromarray(rng.random((S // 10, 4), dtype=np.float32)).resize((L, L), Image.BILINEAR)
    o = (L - h) // 2
    a = a.rotate(float(rng.uniform(0, 180)), Image.BILINEAR).crop((o, o, o + h, o + h))
    return np.asarray(a.resize((S, S), Image.BILINEAR))


def saturate(rgb: np.ndarray, k: float = 1.6, lift: float = 0.0) -> np.ndarray:
    g = rgb.mean()
    return np.clip(g + (rgb - g) * k + lift, 0, 1).astype(np.float32)


def background(style: str, p: np.ndarray, c0: np.ndarray, c1: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    S = p.shape[0]
    if style == "sketch":  # paper with a faint pencil trace of the texture
        return np.array([0.98, 0.97, 0.94], np.float32) * (1 - 0.1 * p)[..., None]
    if style == "painting":  # blurred texture, blotchy colour, brush strokes
        p = _upsample(p.reshape(S // 4, 4, S // 4, 4).mean((1, 3)), S)
        blotch = np.stack([_upsample(rng.random((5, 5)), S) for _ in range(3)], -1)
        img = c0 + (c1 - c0) * p[..., None]
        return img * (0.88 + 0.24 * blotch) * (0.88 + 0.24 * _streaks(rng, S))[..., None]
    if style == "cartoon":  # flat, brighter, more saturated
        c0, c1 = saturate(c0, 1.8, 0.08), saturate(c1, 1.8, 0.08)
        return c0 + (c1 - c0) * p[..., None]
    _, Y = _grid(S)  # photo: texture under a soft top light
    return (c0 + (c1 - c0) * p[..., None]) * (1.06 - 0.16 * Y)[..., None]


def mask(polys, w: int, h: int, dx: float = 0.0, dy: float = 0.0) -> Image.Image:
    m = Image.new("L", (w, h), 0)
    d = ImageDraw.Draw(m)
    for pts, hole in polys:
        d.polygon([(x + dx, y + dy) for x, y in pts] if dx or dy else pts, fill=0 if hole else 255)
    return m


def _composite(img: np.ndarray, layer: np.ndarray, m: np.ndarray) -> np.ndarray:
    return img + (layer - img) * m[..., None]


def _f(im: Image.Image) -> np.ndarray:
    return np.asarray(im, np.float32) * (1 / 255)


# Painters draw one object on a window `img` (h, w, 3) around it; `polys` and `g` are in window pixels,
# g.S is the full (2x) image side, which sets line widths and blur radii.

def paint_photo(img, polys, rgb, g: Geom, light, rng):
    h, w = img.shape[:2]
    lx, ly = light
    shadow = mask(polys, w, h, -lx * 0.12 * g.r, -ly * 0.12 * g.r)
    img = img * (1 - 0.4 * _f(shadow.filter(ImageFilter.GaussianBlur(max(1.0, 0.08 * g.r)))))[..., None]
    x = ((np.arange(w, dtype=np.float32) + 0.5 - g.cx) / g.r)[None, :]
    y = ((np.arange(h, dtype=np.float32) + 0.5 - g.cy) / g.r)[:, None]
    shade = 0.8 + 0.3 * np.clip(x * lx + y * ly, -1, 1)  # brighter towards the light
    spec = 0.35 * np.exp(-((x - 0.45 * lx) ** 2 + (y - 0.45 * ly) ** 2) * 6.0)  # highlight
    obj = rgb * shade[..., None] + spec[..., None]
    return _composite(img, obj, _f(mask(polys, w, h)))


def paint_sketch(img, polys, rgb, g: Geom, light, rng, opaque: bool = False):
    h, w = img.shape[:2]
    if opaque:  # occluders hide what is behind them, like paper
        img = _composite(img, np.array([0.98, 0.97, 0.94], np.float32), _f(mask(polys, w, h)))
    ink = Image.new("L", (w, h), 0)
    d = ImageDraw.Draw(ink)
    for _ in range(2):  # two jittered passes, like a hand-drawn outline
        for pts, _hole in polys:
            p = np.asarray(pts) + rng.normal(0, g.S / 110, (len(pts), 2))
            q = [tuple(t) for t in p.tolist()]
            d.line(q + q[:1], fill=int(rng.integers(170, 236)), width=max(1, round(g.S / 64)))
    if rng.random() < 0.5:  # hatching inside the silhouette
        hatch = Image.new("L", (w, h), 0)
        hd = ImageDraw.Draw(hatch)
        step = max(3, g.S // 18)
        off = int(rng.integers(0, step + 1))
        for k in range(-h, w, step):
            hd.line([(k + off, 0), (k + off + h, h)], fill=100, width=1)
        hatched = (np.asarray(hatch) * _f(mask(polys, w, h))).astype(np.uint8)
        ink = Image.fromarray(np.maximum(np.asarray(ink), hatched))
    return img * (1 - 0.85 * _f(ink))[..., None]


def paint_painting(img, polys, rgb, g: Geom, light, rng):
    h, w = img.shape[:2]
    m = _f(mask(polys, w, h).filter(ImageFilter.GaussianBlur(g.S / 45)))  # soft, brushed edges
    n = max(h, w)
    blotch = np.stack([_upsample(rng.random((4, 4)), n)[:h, :w] for _ in range(3)], -1)
    obj = rgb * (0.8 + 0.4 * blotch) * (0.75 + 0.5 * _streaks(rng, n)[:h, :w])[..., None]
    return _composite(img, obj, m)


def paint_cartoon(img, polys, rgb, g: Geom, light, rng):
    h, w = img.shape[:2]
    img = _composite(img, saturate(rgb, 1.3, 0.03), _f(mask(polys, w, h)))
    ink = Image.new("L", (w, h), 0)
    d = ImageDraw.Draw(ink)
    for pts, _hole in polys:
        d.line(pts + pts[:1], fill=255, width=max(2, g.S // 20), joint="curve")
    return img * (1 - _f(ink))[..., None]


PAINTERS = {"photo": paint_photo, "sketch": paint_sketch, "painting": paint_painting, "cartoon": paint_cartoon}


def paint(style: str, img: np.ndarray, polys, rgb, g: Geom, light, rng, **kw) -> np.ndarray:
    """Paint an object (polys in full-image pixels) onto `img` in place, touching only a window
    around it: the object, its shadow, blur and outline. Much faster for small objects."""
    S = img.shape[0]
    pts = np.concatenate([np.asarray(p) for p, _ in polys])
    pad = 0.45 * g.r + 0.08 * S + 2
    x0, y0 = (np.floor(pts.min(0) - pad).clip(0, S)).astype(int)
    x1, y1 = (np.ceil(pts.max(0) + pad).clip(0, S)).astype(int)
    if x1 <= x0 or y1 <= y0:
        return img
    local = [([(x - x0, y - y0) for x, y in p], hole) for p, hole in polys]
    lg = Geom(g.cx - x0, g.cy - y0, g.r, S)
    img[y0:y1, x0:x1] = PAINTERS[style](img[y0:y1, x0:x1], local, rgb, lg, light, rng, **kw)
    return img
