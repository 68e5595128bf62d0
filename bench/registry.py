"""Ordered registries with lazy targets, so listing names never imports torch.

A target is either an object or a string "module.path:Attribute" imported on first use.
Insertion order is kept: it sets the row order of result tables.
"""
from __future__ import annotations

import importlib
from typing import Any, Generic, TypeVar

from bench.errors import unknown_name

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, kind: str):
        self.kind = kind
        self._targets: dict[str, Any] = {}
        self._meta: dict[str, dict] = {}

    def register(self, name: str, target: Any = None, **meta):
        """Register `target` under `name`; without a target, works as a class decorator."""
        if target is None:
            def deco(obj):
                self.register(name, obj, **meta)
                return obj
            return deco
        if name in self._targets and self._targets[name] is not target:
            raise ValueError(f"{self.kind} '{name}' is already registered")
        self._targets[name] = target
        self._meta[name] = meta
        return target

    def names(self) -> list[str]:
        return list(self._targets)

    def meta(self, name: str) -> dict:
        self.check(name)
        return self._meta[name]

    def check(self, name: str) -> str:
        if name not in self._targets:
            raise unknown_name(self.kind, name, self.names())
        return name

    def get(self, name: str) -> T:
        target = self._targets[self.check(name)]
        if isinstance(target, str):
            module, _, attr = target.partition(":")
            target = getattr(importlib.import_module(module), attr)
            self._targets[name] = target
        return target

    def __contains__(self, name: str) -> bool:
        return name in self._targets
