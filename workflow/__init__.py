"""ScaleDAG: the Python package the Snakemake rules call (the science lives here, rules stay thin)."""
