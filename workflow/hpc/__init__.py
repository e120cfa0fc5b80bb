"""HPC: cluster resources per rule and one launch path for python, torchrun and srun."""
