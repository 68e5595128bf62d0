"""The toy world's vocabulary: object classes, colours, background textures and styles.

Every entry lists its caption words; the first word of a class is its canonical class name (the one that
fills prompt templates). Canonical class names start with a consonant so that templates such as
"a photo of a {}." read grammatically; synonyms may start with a vowel (the caption grammar picks a/an).
Insertion order is the label order.
"""
from __future__ import annotations

from typing import NamedTuple

# class key -> caption words (first = canonical class name)
CLASSES: dict[str, tuple[str, ...]] = {
    "circle": ("circle", "disc"),
    "square": ("square", "box"),
    "triangle": ("triangle",),
    "star": ("star",),
    "cross": ("cross", "plus sign"),
    "heart": ("heart",),
    "diamond": ("diamond", "rhombus"),
    "ring": ("ring", "donut", "hoop"),
    "crescent": ("crescent", "moon"),
    "hexagon": ("hexagon",),
    "lightning": ("lightning bolt", "bolt", "zigzag"),
    "house": ("house", "hut"),
}
CLASS_KEYS: list[str] = list(CLASSES)
CLASSNAMES: list[str] = [words[0] for words in CLASSES.values()]


class Colour(NamedTuple):
    rgb: tuple[int, int, int]
    words: tuple[str, ...]


COLOURS: dict[str, Colour] = {
    "red": Colour((222, 30, 36), ("red", "crimson", "scarlet")),
    "orange": Colour((246, 132, 18), ("orange", "amber")),
    "yellow": Colour((244, 214, 28), ("yellow", "golden")),
    "green": Colour((38, 168, 58), ("green", "emerald")),
    "cyan": Colour((24, 192, 204), ("cyan", "teal")),
    "blue": Colour((30, 72, 216), ("blue", "azure")),
    "purple": Colour((138, 48, 190), ("purple", "violet")),
    "pink": Colour((240, 100, 182), ("pink", "magenta")),
}

# background texture -> adjectives used in "on a <adj> background"
BACKGROUNDS: dict[str, tuple[str, ...]] = {
    "plain": ("plain", "blank"),
    "striped": ("striped", "stripy"),
    "dotted": ("dotted", "spotty"),
    "checkered": ("checkered", "checkerboard"),
    "noisy": ("noisy", "grainy"),
    "wavy": ("wavy",),
}

# style -> caption prefixes; "{a}" is the noun phrase with its article, "{bare}" without it.
STYLES: dict[str, tuple[str, ...]] = {
    "photo": ("a photo of {a}", "a photograph of {a}"),
    "sketch": ("a sketch of {a}", "a drawing of {a}", "a pencil sketch of {a}"),
    "painting": ("a painting of {a}", "an oil painting of {a}"),
    "cartoon": ("a cartoon {bare}", "a cartoon of {a}"),
}
# prefixes that name no style, used by the forms without a style
NEUTRAL_PREFIXES: tuple[str, ...] = ("{a}", "an image of {a}", "a picture of {a}")
