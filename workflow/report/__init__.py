"""Report stage: loss-curve figures and the per-study W&B report."""
