"""Data stage: sources -> clean, de-duplicated JSONL splits -> tokenizer -> Megatron .bin/.idx."""
