"""Embedding LayerNorm (BLOOM's ``word_embeddings_layernorm``) for Megatron-core's GPTModel.

megatron-core 0.16.1 has no embedding norm.  ``NormedLanguageModelEmbedding`` subclasses
``LanguageModelEmbedding`` and applies a LayerNorm to its output (word + optional learned position
embeddings, after the [b, s, h] -> [s, b, h] transpose and embedding dropout), i.e. right before the
first transformer layer.  ``EmbeddingNormGPTModel`` is a GPTModel whose embedding is that subclass;
the norm lives at ``embedding.embedding_layernorm.{weight,bias}``, so it is in ``state_dict()``,
in ``sharded_state_dict()`` (replicated across TP/DP, saved by dist_checkpointing) and in
``parameters()`` (trained).  No Megatron source is changed.

The norm is always a LayerNorm (with bias), as in BLOOM, whatever the blocks' normalization is;
its epsilon is ``config.layernorm_epsilon``.
"""

from __future__ import annotations

import torch
from megatron.core.models.common.embeddings.language_model_embedding import LanguageModelEmbedding
from megatron.core.models.gpt import GPTModel
from torch import Tensor

__all__ = ["NormedLanguageModelEmbedding", "EmbeddingNormGPTModel", "attach_embedding_layernorm"]

NORM_NAME = "embedding_layernorm"


class NormedLanguageModelEmbedding(LanguageModelEmbedding):
    """A LanguageModelEmbedding followed by a LayerNorm over the hidden dimension."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.embedding_layernorm = torch.nn.LayerNorm(
            self.config.hidden_size,
            eps=self.config.layernorm_epsilon,
            dtype=self.config.params_dtype,
        )
        for param in self.embedding_layernorm.parameters():
            # replicated across TP; under sequence parallelism its grads need Megatron's all-reduce
            param.sequence_parallel = bool(self.config.sequence_parallel)

    def forward(self, input_ids: Tensor, position_ids: Tensor, tokentype_ids: int = None) -> Tensor:
        embeddings = super().forward(input_ids, position_ids, tokentype_ids=tokentype_ids)
        return self.embedding_layernorm(embeddings)


def attach_embedding_layernorm(model: GPTModel) -> GPTModel:
    """Replace `model.embedding` (if this stage has one) by a NormedLanguageModelEmbedding.

    The new embedding takes over the existing word/position embedding modules (the very same
    Parameter objects, with their initial values and the attributes GPTModel set on them, e.g. for
    tied output weights), so a model with the norm starts from the same weights as one without."""
    old = getattr(model, "embedding", None)
    if old is None or isinstance(old, NormedLanguageModelEmbedding):
        return model
    new = NormedLanguageModelEmbedding(
        config=old.config,
        vocab_size=old.vocab_size,
        max_sequence_length=old.max_sequence_length,
        position_embedding_type="learned_absolute" if old.add_position_embedding else "none",
        num_tokentypes=old.num_tokentypes,
        scatter_to_sequence_parallel=old.scatter_to_sequence_parallel,
        tp_group=old.tp_group,
    )
    new.word_embeddings = old.word_embeddings
    if old.add_position_embedding:
        new.position_embeddings = old.position_embeddings
    new.tokentype_embeddings = old.tokentype_embeddings
    new.embedding_dropout = old.embedding_dropout
    new.train(old.training)
    model.embedding = new
    return model


class EmbeddingNormGPTModel(GPTModel):
    """GPTModel with an embedding LayerNorm (same constructor arguments as GPTModel)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        attach_embedding_layernorm(self)
