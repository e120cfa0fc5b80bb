"""LAMB: the update matches the paper's formula by hand, sits behind Megatron's wrappers, trains and resumes."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest
import torch

from conftest import make_run_spec, train_run
from workflow.train.lamb import Lamb
from workflow.train.metrics import read_metrics


def _hand_lamb(p, grads, lr, b1, b2, eps, wd):
    """LAMB written out with Python floats, one parameter tensor as a flat list."""
    p, m, v = list(p), [0.0] * len(p), [0.0] * len(p)
    for t, g in enumerate(grads, start=1):
        m = [b1 * mi + (1 - b1) * gi for mi, gi in zip(m, g)]
        v = [b2 * vi + (1 - b2) * gi * gi for vi, gi in zip(v, g)]
        u = [(mi / (1 - b1**t)) / (math.sqrt(vi / (1 - b2**t)) + eps) + wd * pi for mi, vi, pi in zip(m, v, p)]
        p_norm, u_norm = math.sqrt(sum(x * x for x in p)), math.sqrt(sum(x * x for x in u))
        trust = p_norm / u_norm if p_norm > 0 and u_norm > 0 else 1.0
        p = [pi - lr * trust * ui for pi, ui in zip(p, u)]
    return p


def test_lamb_step_matches_hand_computed_update():
    start = [0.5, -1.0, 2.0, 0.25]
    grads = [[0.1, -0.2, 0.3, 0.05], [-0.3, 0.1, 0.2, 0.4], [0.0, 0.5, -0.1, 0.2]]
    param = torch.nn.Parameter(torch.tensor(start, dtype=torch.float64).reshape(2, 2))
    opt = Lamb([param], lr=0.01, betas=(0.9, 0.95), eps=1e-6, weight_decay=0.1)
    for g in grads:
        param.grad = torch.tensor(g, dtype=torch.float64).reshape(2, 2)
        opt.step()
    expected = _hand_lamb(start, grads, 0.01, 0.9, 0.95, 1e-6, 0.1)
    assert param.detach().reshape(-1).tolist() == pytest.approx(expected, rel=1e-12, abs=1e-14)
    assert float(opt.state[param]["step"]) == 3
    # the trust ratio makes the step size relative to the weight: it is not Adam
    adam_param = torch.nn.Parameter(torch.tensor(start, dtype=torch.float64).reshape(2, 2))
    adam = torch.optim.AdamW([adam_param], lr=0.01, betas=(0.9, 0.95), eps=1e-6, weight_decay=0.1)
    for g in grads:
        adam_param.grad = torch.tensor(g, dtype=torch.float64).reshape(2, 2)
        adam.step()
    assert not torch.allclose(adam_param, param)


def test_lamb_zero_weights_fall_back_to_trust_one():
    param = torch.nn.Parameter(torch.zeros(3))
    param.grad = torch.tensor([1.0, -1.0, 2.0])
    Lamb([param], lr=0.1, betas=(0.9, 0.999), eps=0.0).step()
    # first step: m_hat / sqrt(v_hat) = sign(g); ||p|| = 0 -> trust 1
    assert param.detach().tolist() == pytest.approx([-0.1, 0.1, -0.1])


def _one_layer_ddp(train: dict):
    """A one-layer LLaMA behind Megatron's DDP, its optimizer and scheduler, from seed 0."""
    from megatron.core.distributed import DistributedDataParallel, DistributedDataParallelConfig

    from workflow.model.gpt import build_gpt_model, make_model_spec
    from workflow.train.optim import build_optimizer, build_scheduler

    torch.manual_seed(0)
    model = build_gpt_model(make_model_spec("llama", {"layers": 1, "hidden": 32, "heads": 2, "seq_length": 16}, 64))
    ddp = DistributedDataParallel(model.config, DistributedDataParallelConfig(grad_reduce_in_fp32=True), model)
    opt = build_optimizer([ddp], train)
    return ddp, opt, build_scheduler(opt, train, 100)


def _ddp_step(ddp, opt, sched) -> float:
    """One training step on a fixed batch of 2 x 16 tokens; returns its loss."""
    tokens = torch.randint(0, 64, (2, 16), generator=torch.Generator().manual_seed(1))
    ddp.zero_grad_buffer()
    opt.zero_grad()
    loss = ddp(tokens, torch.arange(16).expand(2, 16), None, labels=tokens).mean()
    loss.backward()
    ddp.finish_grad_sync()
    opt.step()
    sched.step(increment=2)
    return loss.item()


def test_lamb_behind_megatrons_wrappers_and_checkpoints(megatron_dist, tmp_path):
    from workflow.train.checkpoint import load_checkpoint, save_checkpoint

    train = {"lr": 0.01, "optimizer": "lamb", "weight_decay": 0.1, "grad_clip": 1.0}
    ddp, opt, sched = _one_layer_ddp(train)
    inner = [w.optimizer for w in opt.chained_optimizers]
    assert all(isinstance(o, Lamb) for o in inner)
    # Megatron's param groups (no weight decay on norms/biases) are kept
    assert sorted({g["wd_mult"] for o in inner for g in o.param_groups}) == [0.0, 1.0]
    losses = [_ddp_step(ddp, opt, sched) for _ in range(3)]
    save_checkpoint(tmp_path / "ck", 3, ddp.module, opt, sched, {"consumed_samples": 6})
    after = [_ddp_step(ddp, opt, sched) for _ in range(2)]
    assert losses[-1] < losses[0]

    ddp2, opt2, sched2 = _one_layer_ddp(train)
    load_checkpoint(tmp_path / "ck", 3, ddp2.module, opt2, sched2)
    p2 = next(iter(opt2.chained_optimizers[0].optimizer.state.values()))
    assert float(p2["step"]) == 3 and p2["exp_avg"].abs().sum() > 0
    assert [_ddp_step(ddp2, opt2, sched2) for _ in range(2)] == after


LAMB_STEPS = 30


def _lamb_spec(tiny_corpus, out):
    return make_run_spec(tiny_corpus, out, steps=LAMB_STEPS, optimizer="lamb", lr=0.05, eval_interval=LAMB_STEPS)


@pytest.fixture(scope="module")
def lamb_run(tiny_corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("lamb") / "tp1"
    train_run(_lamb_spec(tiny_corpus, out))
    return out


def _rows(out, kind):
    return [r["loss"] for r in read_metrics(Path(out) / "metrics.jsonl") if r["kind"] == kind]


def test_training_with_lamb_learns(lamb_run):
    valid = _rows(lamb_run, "valid")
    assert valid[-1] < valid[0] - 1.0, valid


def test_lamb_trust_ratio_is_the_whole_tensors_under_tp2(tiny_corpus, lamb_run, tmp_path):
    """TP=2 shards weights; LAMB's norms are summed over the shards, so the curve is TP=1's."""
    spec = _lamb_spec(tiny_corpus, tmp_path / "tp2")
    spec["parallel"] = {"tp": 2, "pp": 1}
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    train_run(spec, launcher=torchrun, env={"OMP_NUM_THREADS": "1"})
    single, parallel = _rows(lamb_run, "train"), _rows(tmp_path / "tp2", "train")
    assert len(parallel) == len(single) == LAMB_STEPS
    assert parallel == pytest.approx(single, rel=2e-3, abs=2e-3)


def test_unknown_optimizer_is_one_line_error(megatron_dist):
    from workflow.errors import ScaleDAGError
    from workflow.train.optim import build_optimizer

    with pytest.raises(
        ScaleDAGError, match=r"train.optimizer: 'sgd' is not supported; expected one of \['adamw', 'lamb'\]"
    ):
        build_optimizer([], {"lr": 1e-3, "optimizer": "sgd"})


def test_cpu_adamw_is_torchs_fused_kernel_with_the_loops_update(megatron_dist, tmp_path):
    """Megatron's fallback AdamW runs fused on CPU; its update equals torch's per-tensor loop to fp32
    rounding, and a checkpoint written by it resumes exactly."""
    from workflow.train.checkpoint import load_checkpoint, save_checkpoint

    train = {"lr": 0.01, "optimizer": "adamw", "weight_decay": 0.1, "grad_clip": 1.0}

    def build(fused: bool):
        ddp, opt, sched = _one_layer_ddp(train)
        if not fused:  # the loop torch runs by default on CPU
            for group in (g for w in opt.chained_optimizers for g in w.optimizer.param_groups):
                group.update(fused=False, foreach=False)
        return ddp, opt, sched

    fused = build(True)
    inner = [w.optimizer for w in fused[1].chained_optimizers]
    assert all(type(o) is torch.optim.AdamW and o.defaults["fused"] for o in inner)
    assert all(g["fused"] for o in inner for g in o.param_groups)
    loop = build(False)
    for _ in range(5):
        _ddp_step(*fused)
        _ddp_step(*loop)
    for a, b in zip(fused[0].module.parameters(), loop[0].module.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)

    save_checkpoint(tmp_path / "ck", 5, fused[0].module, fused[1], fused[2], {"consumed_samples": 10})
    for _ in range(2):
        _ddp_step(*fused)
    resumed = build(True)
    load_checkpoint(tmp_path / "ck", 5, resumed[0].module, resumed[1], resumed[2])
    for _ in range(2):
        _ddp_step(*resumed)
    for a, b in zip(fused[0].module.parameters(), resumed[0].module.parameters(), strict=True):
        assert torch.equal(a, b)
