"""Model stage: Megatron-core GPTModel presets, their attention/embedding variants, FLOP counts."""
