"""Chinchilla (arXiv 2203.15556): IsoFLOP points, approaches 1-3, figures and the closed loop."""
