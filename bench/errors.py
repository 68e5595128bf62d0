"""User-facing errors: one clear message that says what to do."""
from __future__ import annotations

import difflib


class BenchError(Exception):
    """An error the user caused and can fix; the CLI prints it without a traceback."""


def unknown_name(kind: str, name: str, valid: list[str]) -> BenchError:
    """Error for a name that is not registered, listing valid names and the closest match."""
    close = difflib.get_close_matches(name, valid, n=1, cutoff=0.5)
    hint = f" Did you mean '{close[0]}'?" if close else ""
    return BenchError(f"Unknown {kind} '{name}'.{hint} Valid {kind}s: {', '.join(valid) or '(none)'}.")
