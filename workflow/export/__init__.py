"""Export stage: checkpoints to Hugging Face `transformers` directories."""
