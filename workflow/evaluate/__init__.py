"""Evaluation stage: loss, zero-shot (lm-eval) and band gap of a run's final checkpoint."""
