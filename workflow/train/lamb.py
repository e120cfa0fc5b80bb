"""LAMB (You et al. 2019, arXiv 1904.00962) as a plain torch optimizer, for Megatron's wrappers.

MatGPT trained with LAMB; megatron-core 0.16.1's `get_megatron_optimizer` only builds Adam or SGD,
so `workflow.train.optim` builds Megatron's optimizer as usual and hands this class the same parameter
groups (weight-decay/lr multipliers, fp32 main params under bf16) — Megatron's source is untouched.

Per parameter p with gradient g at step t (decoupled weight decay wd, as in apex's FusedLAMB):
    m = b1 m + (1-b1) g;   v = b2 v + (1-b2) g^2
    u = (m / (1-b1^t)) / (sqrt(v / (1-b2^t)) + eps) + wd p
    trust = ||p|| / ||u||  (1 when either norm is 0)
    p -= lr * trust * u
Gradient clipping is Megatron's (before `step`). Under tensor parallelism a sharded parameter's
norms are summed over its tensor-parallel group, so the trust ratio is that of the whole tensor and
TP=2 follows TP=1. State keys (`step`, `exp_avg`, `exp_avg_sq`) are Adam's, so Megatron's
`init_state_fn` and dist_checkpointing save and restore LAMB unchanged.
"""

from __future__ import annotations

import torch


class Lamb(torch.optim.Optimizer):
    def __init__(
        self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-6, weight_decay: float = 0.0, tp_group=None
    ):
        if lr < 0 or eps < 0 or not (0 <= betas[0] < 1 and 0 <= betas[1] < 1):
            raise ValueError(f"invalid LAMB hyper-parameters lr={lr} betas={betas} eps={eps}")
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay))
        self.tp_group = tp_group

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            b1, b2 = group["betas"]
            updates, sq_norms = [], []
            for p in params:
                state = self.state[p]
                if "step" not in state:
                    state["step"] = torch.zeros((), dtype=torch.float32)
                if "exp_avg" not in state:
                    state["exp_avg"] = torch.zeros_like(p)
                    state["exp_avg_sq"] = torch.zeros_like(p)
                state["step"] += 1
                t = float(state["step"])
                g = p.grad.to(p.dtype)
                m, v = state["exp_avg"], state["exp_avg_sq"]
                m.mul_(b1).add_(g, alpha=1 - b1)
                v.mul_(b2).addcmul_(g, g, value=1 - b2)
                update = (m / (1 - b1**t)) / ((v / (1 - b2**t)).sqrt_().add_(group["eps"]))
                if group["weight_decay"]:
                    update.add_(p, alpha=group["weight_decay"])
                updates.append(update)
                acc = torch.promote_types(p.dtype, torch.float32)  # norms in fp32 at least
                sq_norms.append(torch.stack([p.to(acc).pow(2).sum(), update.to(acc).pow(2).sum()]))
            norms = self._full_norms(params, torch.stack(sq_norms))
            for p, update, (p_norm, u_norm) in zip(params, updates, norms.tolist()):
                trust = p_norm / u_norm if p_norm > 0 and u_norm > 0 else 1.0
                p.add_(update, alpha=-group["lr"] * trust)
        return loss

    def _full_norms(self, params, sq: torch.Tensor) -> torch.Tensor:
        """||p||, ||u|| of whole tensors: sharded parameters' squares summed over the TP group."""
        group = self.tp_group
        if group is not None and torch.distributed.is_initialized() and torch.distributed.get_world_size(group) > 1:
            sharded = torch.tensor(
                [bool(getattr(p, "tensor_model_parallel", False)) for p in params], dtype=sq.dtype, device=sq.device
            ).unsqueeze(1)
            part = sq * sharded
            torch.distributed.all_reduce(part, group=group)
            sq = part + sq * (1 - sharded)
        return sq.sqrt()
