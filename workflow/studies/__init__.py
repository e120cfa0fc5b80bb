"""How each study kind expands its config into runs (IsoFLOP sweep, benchmarks, proxy)."""
