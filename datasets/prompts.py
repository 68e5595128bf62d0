"""Class names and prompt templates shipped as data files in datasets/data/ (one entry a line, '#' lines are
comments). Templates use '{}' for the class name; '{article}' is the name with underscores as spaces after
"a"/"an" (FLYP's FMoW prompts), which plain str.format cannot express, hence `ArticleTemplate`.
"""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

DATA_DIR = Path(__file__).parent / "data"


@lru_cache(maxsize=None)
def read_lines(name: str) -> tuple[str, ...]:
    """Entries of datasets/data/<name>, without comments; inner spaces are kept (Caltech has a double one)."""
    text = (DATA_DIR / name).read_text(encoding="utf-8")
    return tuple(line.rstrip("\n") for line in text.splitlines() if line and not line.startswith("#"))


def classnames(dataset: str) -> list[str]:
    return list(read_lines(f"{dataset}_classnames.txt"))


def templates(dataset: str) -> list[str]:
    return [ArticleTemplate(t) if "{article}" in t else t for t in read_lines(f"{dataset}_templates.txt")]


@lru_cache(maxsize=None)
def read_json(name: str) -> dict:
    return json.loads((DATA_DIR / name).read_text(encoding="utf-8"))


def with_article(name: str) -> str:
    """FLYP's append_proper_article: underscores become spaces, then 'an' before a vowel, else 'a'."""
    name = name.replace("_", " ")
    return ("an " if name[0] in "aeiou" else "a ") + name


class ArticleTemplate(str):
    """A template string whose format() fills '{article}' (and '{}'), so callers can keep using t.format(c)."""

    def format(self, *args, **kwargs) -> str:  # noqa: A003 - same signature as str.format
        name = args[0]
        return str(self).replace("{article}", with_article(name)).replace("{}", name)
