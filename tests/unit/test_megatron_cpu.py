"""The CPU shim redirects exactly the CUDA assumptions megatron-core makes, and only without a GPU."""

import pytest
import torch

from workflow.model import megatron_cpu

pytestmark = pytest.mark.skipif(torch.cuda.is_available(), reason="the shim is inactive on a GPU machine")


@pytest.fixture
def shim():
    was_active = megatron_cpu.is_active()
    megatron_cpu.activate()
    yield
    if not was_active:
        megatron_cpu.deactivate()


def test_without_shim_cuda_placement_fails():
    if megatron_cpu.is_active():
        pytest.skip("shim already active in this process")
    with pytest.raises((RuntimeError, AssertionError)):
        torch.zeros(1, device="cuda")


def test_cuda_requests_land_on_cpu(shim):
    assert torch.zeros(2, device="cuda").device.type == "cpu"
    assert torch.tensor([1.0], device=torch.device("cuda")).device.type == "cpu"
    t = torch.ones(3)
    assert t.cuda() is t
    assert t.to("cuda").device.type == "cpu"
    assert torch.cuda.current_device() == torch.device("cpu")
    torch.cuda.synchronize()  # a no-op instead of an error
    assert t.type() == "torch.cuda.FloatTensor"  # clip_grads asserts this name
    assert t.type(torch.float64).dtype == torch.float64  # type conversion still works


def test_activate_is_idempotent_and_reversible():
    if megatron_cpu.is_active():
        pytest.skip("shim already active in this process")
    original = torch.cuda.current_device
    assert megatron_cpu.activate() and megatron_cpu.activate()
    megatron_cpu.deactivate()
    assert torch.cuda.current_device is original and not megatron_cpu.is_active()


def test_pinned_megatron_version():
    from importlib.metadata import version

    assert version("megatron-core") == megatron_cpu.MEGATRON_CORE_VERSION


def test_model_compute_lifts_the_mode_and_restores_it(shim):
    with megatron_cpu.model_compute():
        with pytest.raises((RuntimeError, AssertionError)):  # no rewriting inside: a CUDA request fails loudly
            torch.zeros(1, device="cuda")
    assert torch.zeros(1, device="cuda").device.type == "cpu"  # and the mode is back after it


@pytest.mark.parametrize(
    "head, rot, interleaved", [(32, 32, False), (32, 8, False), (32, 32, True)], ids=["full", "partial", "interleaved"]
)
def test_rope_without_pass_through_copy_is_megatrons_arithmetic(shim, head, rot, interleaved):
    from megatron.core.models.common.embeddings import rope_utils

    assert rope_utils._apply_rotary_pos_emb_bshd is megatron_cpu._rope_bshd  # installed by activate()
    original = megatron_cpu._ORIGINALS["rope_bshd"]
    torch.manual_seed(0)
    freqs = torch.randn(16, 1, 1, rot)
    results = []
    for fn in (original, megatron_cpu._rope_bshd):
        t = torch.randn(16, 2, 4, head, generator=torch.Generator().manual_seed(1)).requires_grad_()
        out = fn(t, freqs, rotary_interleaved=interleaved)
        (out * torch.arange(out.numel()).reshape(out.shape)).sum().backward()
        results.append((out.detach(), t.grad))
    (out_a, grad_a), (out_b, grad_b) = results
    torch.testing.assert_close(out_b, out_a, rtol=0, atol=1e-6)
    torch.testing.assert_close(grad_b, grad_a, rtol=0, atol=1e-4)
