"""An lm-eval `LM` over a run's Megatron-core checkpoint, so zero-shot numbers come from lm-eval's
own task/metric code without first exporting to Hugging Face.

Built on lm-eval's `TemplateLM`, which owns the context/continuation encoding (the same
`_encode_pair` HFLM uses), so this class only scores token lists: left-truncate to the model's
sequence length + 1 exactly as HFLM does, sum the continuation's log-probabilities and check
whether it is the greedy continuation. Rolling log-likelihood (LAMBADA perplexity-style tasks)
uses lm-eval's disjoint rolling windows, also as HFLM does, so the two agree on the same weights.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch
import torch.nn.functional as F
from lm_eval import utils as lm_utils
from lm_eval.api.model import TemplateLM
from tqdm import tqdm

from workflow.errors import ScaleDAGError
from workflow.evaluate.loss import load_model_for_eval
from workflow.model import megatron_cpu


def load_run_tokenizer(path: str | Path):
    from tokenizers import Tokenizer

    path = Path(path)
    if not path.is_file():
        raise ScaleDAGError(f"{path}: tokenizer.json of the run is missing")
    return Tokenizer.from_file(str(path))


def check_tokenizer(tokenizer, vocab_size: int, where: str, eod_token: str | None = None) -> int:
    """The checkpoint's embedding must cover every token id, and the EOD token must exist; returns its id."""
    n = tokenizer.get_vocab_size(with_added_tokens=True)
    if n > vocab_size:
        raise ScaleDAGError(
            f"{where}: tokenizer has {n} tokens but the checkpoint's embedding has {vocab_size} rows; "
            "this is not the tokenizer the run was trained with"
        )
    candidates = [eod_token] if eod_token else ["<|endoftext|>", "</s>"]
    for tok in candidates:
        tid = tokenizer.token_to_id(tok)
        if tid is not None:
            return tid
    raise ScaleDAGError(f"{where}: tokenizer has no end-of-document token (tried {candidates})")


class MegatronLM(TemplateLM):
    """lm-eval model over an in-memory Megatron GPTModel (fp32 on CPU, any device it is on)."""

    def __init__(
        self,
        model,
        tokenizer,
        seq_length: int,
        vocab_size: int,
        batch_size: int = 16,
        tokenizer_path: str | None = None,
    ):
        super().__init__()
        self.model = model
        self.tok = tokenizer
        self._max_length = int(seq_length)
        self.vocab_size = int(vocab_size)
        self._batch_size = int(batch_size)
        self._eot = check_tokenizer(tokenizer, vocab_size, tokenizer_path or "tokenizer")
        self.tokenizer_sha256 = (
            hashlib.sha256(Path(tokenizer_path).read_bytes()).hexdigest() if tokenizer_path else None
        )
        self._device = next(model.parameters()).device

    @classmethod
    def from_run(cls, spec: dict, tokenizer_path: str | None = None, batch_size: int = 16):
        """Load a run's final checkpoint (resolved run spec) and its tokenizer (default: the spec's)."""
        tokenizer_path = tokenizer_path or spec["data"]["tokenizer"]
        tok = load_run_tokenizer(tokenizer_path)
        check_tokenizer(tok, int(spec["vocab_size"]), str(tokenizer_path))  # before the (slow) load
        model, mspec, iteration = load_model_for_eval(spec)
        lm = cls(model, tok, mspec.seq_length, mspec.vocab_size, batch_size, str(tokenizer_path))
        lm.iteration = iteration
        return lm

    # -- TemplateLM's tokenizer hooks --------------------------------------------------------------
    @property
    def eot_token_id(self) -> int:
        return self._eot

    @property
    def max_length(self) -> int:
        return self._max_length

    def tok_encode(self, string: str, add_special_tokens: bool | None = None, **kwargs) -> list[int]:
        return self.tok.encode(string, add_special_tokens=False).ids

    def tok_decode(self, tokens) -> str:
        return self.tok.decode(list(tokens))

    # -- scoring -----------------------------------------------------------------------------------
    @torch.no_grad()
    def _logprobs(self, inputs: list[list[int]]) -> list[torch.Tensor]:
        """Log-softmax over the vocabulary for each (right-padded) input; causal, so padding is inert."""
        width = max(len(x) for x in inputs)
        tokens = torch.zeros(len(inputs), width, dtype=torch.long)
        for i, x in enumerate(inputs):
            tokens[i, : len(x)] = torch.tensor(x, dtype=torch.long)
        tokens = tokens.to(self._device)
        pos = torch.arange(width, device=self._device).unsqueeze(0).expand_as(tokens)
        with megatron_cpu.model_compute():  # a plain forward: no device rewriting needed
            logits = self.model(tokens, pos, None)
        logp = F.log_softmax(logits.float(), dim=-1).cpu()
        return [logp[i, : len(x)] for i, x in enumerate(inputs)]

    def _pieces(self, context_enc: list[int], continuation_enc: list[int]) -> list[tuple[list[int], list[int]]]:
        """(input, targets) windows scoring the continuation. One window = HFLM's left truncation to
        max_length + 1 tokens; a continuation longer than the model's context (tiny models, long
        PIQA/BoolQ answers, where HFLM stops on an assertion) is scored in consecutive windows."""
        if not continuation_enc:
            raise ScaleDAGError("lm-eval request with an empty continuation")
        whole = context_enc + continuation_enc
        pieces, end = [], len(whole)
        first_target = len(context_enc)
        while end > first_target:
            start_t = max(first_target, end - self.max_length)
            inp = whole[max(0, end - 1 - self.max_length) : end - 1]
            pieces.append((inp, whole[start_t:end]))
            end = start_t
        return pieces[::-1]

    def _loglikelihood_tokens(self, requests, disable_tqdm: bool = False, **kwargs) -> list[tuple[float, bool]]:
        pieces = [(i, inp, tgt) for i, (_, ctx, cont) in enumerate(requests) for inp, tgt in self._pieces(ctx, cont)]
        # Longest first (fewer padded positions per batch); answers go back in request order.
        pieces.sort(key=lambda p: -len(p[1]))
        logprob = [0.0] * len(requests)
        greedy = [True] * len(requests)
        bar = tqdm(total=len(pieces), desc="Megatron loglikelihood", disable=disable_tqdm)
        for start in range(0, len(pieces), self._batch_size):
            batch = pieces[start : start + self._batch_size]
            for (i, _, tgt), logp in zip(batch, self._logprobs([p[1] for p in batch])):
                tail = logp[-len(tgt) :]
                target = torch.tensor(tgt, dtype=torch.long)
                greedy[i] = greedy[i] and bool((tail.argmax(dim=-1) == target).all())
                logprob[i] += float(tail.gather(1, target.unsqueeze(1)).sum())
            bar.update(len(batch))
        bar.close()
        return list(zip(logprob, greedy))

    def loglikelihood_rolling(self, requests, disable_tqdm: bool = False) -> list[float]:
        out = []
        for req in tqdm(requests, desc="Megatron rolling loglikelihood", disable=disable_tqdm):
            (string,) = req.args
            windows = map(
                lm_utils.make_disjoint_window,
                lm_utils.get_rolling_token_windows(
                    token_list=self.tok_encode(string),
                    prefix_token=self.prefix_token_id,
                    max_seq_len=self.max_length,
                    context_len=1,
                ),
            )
            scored = self._loglikelihood_tokens([(None, ctx, cont) for ctx, cont in windows], disable_tqdm=True)
            out.append(sum(ll for ll, _ in scored))
        return out

    def generate_until(self, requests, disable_tqdm: bool = False) -> list[str]:
        raise ScaleDAGError(
            "MegatronLM scores log-likelihoods only; generative lm-eval tasks need the HF export "
            "(lm_eval --model hf on results/.../runs/<run>/hf)"
        )
