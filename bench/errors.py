"""User-facing errors: one clear message that says what to do."""
from __future__ import annotations

import difflib


class BenchError(Exception):
    """An error the user caused and can fix; the CLI prints it without a traceback."""


def did_you_mean(name, valid) -> str:
    """" Did you mean 'x'?" for the closest valid name, or "" when none is close."""
    close = difflib.get_close_matches(str(name), [str(v) for v in valid], n=1, cutoff=0.5)
    return f" Did you mean '{close[0]}'?" if close else ""


def unknown_name(kind: str, name: str, valid: list[str]) -> BenchError:
    """Error for a name that is not registered, listing valid names and the closest match."""
    return BenchError(f"Unknown {kind} '{name}'.{did_you_mean(name, valid)} Valid {kind}s: {', '.join(valid) or '(none)'}.")
