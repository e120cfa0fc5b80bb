"""Training stage: the pretraining loop, its dataset order, optimizer, metrics and checkpoints."""
