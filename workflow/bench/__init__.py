"""Benchmarks of the efficiency study: transformer block, GPT-2 throughput, 2:4 sparsity."""
