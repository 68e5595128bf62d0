"""The caption grammar of the toy world.

caption := prefix(noun phrase) "."
noun phrase := [colour] object [" on a <texture> background"]
prefix := a style phrase ("a sketch of {a}", "a cartoon {bare}") for forms with a style, otherwise a
neutral one ("{a}", "an image of {a}"). The object is always named; sketches never name a colour (they
have none). Prompt templates of the toy datasets are sentences of this grammar, so a model pretrained on
these captions reads them.
"""
from __future__ import annotations

import itertools
import re

import numpy as np

from .vocab import BACKGROUNDS, CLASSES, COLOURS, NEUTRAL_PREFIXES, STYLES

CAPTION_FORMS: tuple[str, ...] = (
    "object", "colour", "background", "colour+background",
    "style", "style+colour", "style+background", "style+colour+background",
)
FORM_WEIGHTS = np.array([0.10, 0.14, 0.10, 0.14, 0.14, 0.12, 0.12, 0.14])

_COLOUR_WORDS = {w for c in COLOURS.values() for w in c.words}
_STYLE_HEADS = sorted({p.split("{")[0] for ps in STYLES.values() for p in ps}, key=len, reverse=True)


def _article(phrase: str) -> str:
    return "an" if phrase[0] in "aeiou" else "a"


def _sentence(prefix: str, noun: str, colour: str | None, bg: str | None) -> str:
    bare = f"{colour} {noun}" if colour else noun
    if bg:
        bare += f" on {_article(bg)} {bg} background"
    return prefix.format(a=f"{_article(bare)} {bare}", bare=bare) + "."


def _slots(scene, form: str):
    """Word choices for each slot of `form` (None where the slot is empty)."""
    parts = set(form.split("+"))
    nouns = CLASSES[scene.shape]
    colours = COLOURS[scene.colour].words if "colour" in parts and scene.style != "sketch" else (None,)
    bgs = BACKGROUNDS[scene.background] if "background" in parts else (None,)
    prefixes = STYLES[scene.style] if "style" in parts else NEUTRAL_PREFIXES
    return prefixes, nouns, colours, bgs


def caption(scene, rng: np.random.Generator, form: str | None = None) -> str:
    """A random caption of `scene`; `form` (one of CAPTION_FORMS) is drawn by FORM_WEIGHTS if not given."""
    if form is None:
        form = CAPTION_FORMS[int(rng.choice(len(CAPTION_FORMS), p=FORM_WEIGHTS / FORM_WEIGHTS.sum()))]
    elif form not in CAPTION_FORMS:
        raise ValueError(f"unknown caption form {form!r}; valid: {CAPTION_FORMS}")
    return _sentence(*(slot[int(rng.integers(len(slot)))] for slot in _slots(scene, form)))


def caption_variants(scene) -> set[str]:
    """Every caption the grammar can produce for `scene` (a few hundred strings)."""
    return {_sentence(*choice) for form in CAPTION_FORMS for choice in itertools.product(*_slots(scene, form))}


def caption_form(text: str) -> str:
    """Which of CAPTION_FORMS a caption of this grammar has (sketch captions never have a colour)."""
    parts = []
    if any(text.startswith(h) for h in _STYLE_HEADS):
        parts.append("style")
    if set(re.findall(r"[a-z]+", text)) & _COLOUR_WORDS:
        parts.append("colour")
    if text.endswith(" background."):
        parts.append("background")
    return "+".join(parts) or "object"
