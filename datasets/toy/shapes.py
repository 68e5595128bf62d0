"""Outline polygons of the toy classes in unit coordinates (x right, y down, extent about [-1, 1]).

Each shape is a list of (points, is_hole); holes lie strictly inside their outer polygon so the same
polygons serve for filling (holes painted back) and for outline strokes (sketch, cartoon).
Shapes are chosen to stay distinct under +-25 degree rotation and at 32 px.
"""
from __future__ import annotations

import numpy as np

Poly = tuple[np.ndarray, bool]


def _regular(n: int, r: float, start: float = 0.0) -> np.ndarray:
    t = start + np.arange(n) * 2 * np.pi / n
    return np.stack([r * np.cos(t), r * np.sin(t)], 1)


def _star() -> np.ndarray:
    t = -np.pi / 2 + np.arange(10) * np.pi / 5
    r = np.where(np.arange(10) % 2 == 0, 1.0, 0.42)
    return np.stack([r * np.cos(t), r * np.sin(t) + 0.08], 1)


def _cross(w: float = 0.3, e: float = 0.92) -> np.ndarray:
    return np.array([(-w, -e), (w, -e), (w, -w), (e, -w), (e, w), (w, w),
                     (w, e), (-w, e), (-w, w), (-e, w), (-e, -w), (-w, -w)])


def _heart() -> np.ndarray:
    t = np.linspace(0, 2 * np.pi, 40, endpoint=False)
    x = 16 * np.sin(t) ** 3
    y = -(13 * np.cos(t) - 5 * np.cos(2 * t) - 2 * np.cos(3 * t) - np.cos(4 * t))
    pts = np.stack([x, y], 1)
    pts -= (pts.max(0) + pts.min(0)) / 2
    return pts / np.abs(pts).max() * 0.95


def _crescent() -> np.ndarray:
    # disc of radius r1 at the origin minus a disc of radius r2 at (d, 0)
    r1, r2, d = 0.95, 0.78, 0.42
    x0 = (d * d + r1 * r1 - r2 * r2) / (2 * d)
    y0 = np.sqrt(r1 * r1 - x0 * x0)
    a = np.arctan2(y0, x0)
    outer = np.linspace(a, 2 * np.pi - a, 24)
    b = np.arctan2(y0, x0 - d)
    inner = np.linspace(2 * np.pi - b, b, 16)
    pts = np.concatenate([np.stack([r1 * np.cos(outer), r1 * np.sin(outer)], 1),
                          np.stack([d + r2 * np.cos(inner), r2 * np.sin(inner)], 1)])
    return pts + [0.2, 0.0]


def _box(x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
    return np.array([(x0, y0), (x1, y0), (x1, y1), (x0, y1)])


SHAPES: dict[str, list[Poly]] = {
    "circle": [(_regular(40, 0.92), False)],
    "square": [(_box(-0.78, -0.78, 0.78, 0.78), False)],
    "triangle": [(np.array([(0.0, -0.98), (0.98, 0.72), (-0.98, 0.72)]) + [0, 0.1], False)],
    "star": [(_star(), False)],
    "cross": [(_cross(), False)],
    "heart": [(_heart(), False)],
    "diamond": [(np.array([(0.0, -1.0), (0.6, 0.0), (0.0, 1.0), (-0.6, 0.0)]), False)],
    "ring": [(_regular(40, 0.95), False), (_regular(32, 0.5), True)],
    "crescent": [(_crescent(), False)],
    "hexagon": [(_regular(6, 0.95), False)],
    "lightning": [(np.array([(0.2, -1.0), (-0.55, 0.15), (-0.02, 0.15), (-0.25, 1.0),
                             (0.58, -0.25), (0.05, -0.25), (0.42, -1.0)]), False)],
    "house": [(np.array([(0.0, -0.98), (0.95, -0.12), (0.68, -0.12), (0.68, 0.9),
                         (-0.68, 0.9), (-0.68, -0.12), (-0.95, -0.12)]), False),
              (_box(-0.22, 0.12, 0.22, 0.55), True)],
}


def place(shape: str, cx: float, cy: float, radius: float, rotation_deg: float) -> list[tuple[list, bool]]:
    """Shape polygons moved to pixel centre (cx, cy), scaled to `radius` px, rotated; as PIL point lists."""
    t = np.deg2rad(rotation_deg)
    rot = np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])  # counter-clockwise on screen
    out = []
    for pts, hole in SHAPES[shape]:
        p = pts @ rot * radius + (cx, cy)
        out.append(([tuple(q) for q in p.tolist()], hole))
    return out
