"""Method registry. Insertion order sets the row order of result tables (the paper's order)."""
from bench.registry import Registry

METHODS: Registry = Registry("method")

METHODS.register("zeroshot", "bench.methods.zeroshot:ZeroShot", label="Zeroshot")
METHODS.register("lp", "bench.methods.lp:LinearProbe", label="LP")
METHODS.register("ft", "bench.methods.ft:FineTune", label="FT")
METHODS.register("l2sp", "bench.methods.l2sp:L2SP", label="L2-SP")
METHODS.register("lpft", "bench.methods.lpft:LPFT", label="LP-FT")
METHODS.register("flyp", "bench.methods.flyp:FLYP", label="FLYP")
METHODS.register("flyp-ce", "bench.methods.flyp_ce:FLYPCE", label="FLYP-CE")
# Derived: interpolates each finished finetuning run of the same invocation with the zero-shot weights.
METHODS.register("wiseft", "bench.methods.wiseft:WiseFT", label="WiSE-FT", derived=True)
# Derived: uniform and greedy soups of the finished configurations of a sweep or `--tune` (one task, method, seed).
METHODS.register("soup", "bench.methods.soup:Soup", label="Soup", derived=True)
