import pytest

from workflow.errors import ScaleDAGError
from workflow.telemetry.mfu import PEAK_TFLOPS, match_device, peak_flops, throughput_metrics


@pytest.mark.parametrize(
    "name, dtype, tflops",
    [
        ("NVIDIA H100 80GB HBM3", "bf16", 989),
        ("NVIDIA H100 80GB HBM3", "torch.float16", 989),
        ("NVIDIA H100 80GB HBM3", "fp32", 67),
        ("NVIDIA H100 PCIe", "bf16", 756),
        ("NVIDIA H100 NVL", "bf16", 835.5),
        ("NVIDIA H200", "bfloat16", 989),
        ("NVIDIA GH200 480GB", "bf16", 989),
        ("NVIDIA A100-SXM4-80GB", "bf16", 312),
        ("NVIDIA A100 80GB PCIe", "fp16", 312),
        ("NVIDIA A100-SXM4-40GB", "float32", 19.5),
        ("Tesla V100-SXM2-32GB", "fp16", 125),
        ("Tesla V100-PCIE-16GB", "fp16", 112),
        ("AMD Instinct MI250X", "bf16", 191.5),  # one torch device per GCD
        ("AMD Instinct MI250X/MI250", "bf16", 191.5),
        ("MI250X (whole)", "bf16", 383),  # exact table key
        ("AMD Instinct MI300X", "bf16", 1307.4),
    ],
)
def test_peak_flops_known(name, dtype, tflops):
    assert peak_flops(name, dtype) == pytest.approx(tflops * 1e12)


@pytest.mark.parametrize(
    "name, dtype",
    [
        ("cpu", "fp32"),
        ("x86_64", "fp32"),
        ("", "bf16"),
        (None, "bf16"),
        ("NVIDIA GeForce RTX 4090", "bf16"),  # not in the table
        ("Tesla V100-SXM2-32GB", "bf16"),  # no bf16 hardware
    ],
)
def test_peak_flops_unknown(name, dtype):
    assert peak_flops(name, dtype) is None


def test_match_device_and_table():
    assert match_device("NVIDIA H100 80GB HBM3") == "H100 SXM"
    assert match_device("AMD Instinct MI250X") == "MI250X GCD"
    assert match_device("cpu") == "cpu" and PEAK_TFLOPS["cpu"] is None
    assert match_device("Some Accelerator 9000") is None
    for key, entry in PEAK_TFLOPS.items():
        assert entry is None or set(entry) <= {"bf16", "fp16", "fp32", "tf32"}, key


def test_bad_dtype():
    with pytest.raises(ScaleDAGError, match="dtype"):
        peak_flops("NVIDIA H100 80GB HBM3", "int8")


def test_throughput_metrics_h100_hand_computed():
    # 1e6 tokens in 10 s on 8 H100 SXM, bf16; 6e9 (Chinchilla) and 5.4e9 (6N) FLOPs per token.
    m = throughput_metrics(1_000_000, 10.0, 6e9, 5.4e9, 8, "NVIDIA H100 80GB HBM3", "bf16")
    assert m["tokens_per_s"] == pytest.approx(100_000)
    assert m["tokens_per_s_per_device"] == pytest.approx(12_500)
    # 6e9 * 1e5 / 8 = 7.5e13 FLOP/s = 75 TFLOP/s per device; 75 / 989 = 0.0758342...
    assert m["tflops_per_device_chinchilla"] == pytest.approx(75.0)
    assert m["mfu_chinchilla"] == pytest.approx(0.0758342, rel=1e-6)
    # 5.4e9 * 1e5 / 8 = 67.5 TFLOP/s; 67.5 / 989 = 0.0682508...
    assert m["tflops_per_device_6n"] == pytest.approx(67.5)
    assert m["mfu_6n"] == pytest.approx(0.0682508, rel=1e-6)
    assert m["peak_tflops_per_device"] == 989 and m["device_key"] == "H100 SXM" and m["dtype"] == "bf16"


def test_throughput_metrics_mi250x_gcd():
    # 2 GCDs, 38300 tokens/s total at 1e10 FLOPs/token -> 1.915e14 FLOP/s per GCD = 191.5 TFLOP/s -> MFU 1.0
    m = throughput_metrics(383_000, 10.0, 1e10, None, 2, "AMD Instinct MI250X", "fp16")
    assert m["tflops_per_device_chinchilla"] == pytest.approx(191.5)
    assert m["mfu_chinchilla"] == pytest.approx(1.0)
    assert m["tflops_per_device_6n"] is None and m["mfu_6n"] is None


def test_throughput_metrics_cpu_has_no_mfu():
    m = throughput_metrics(4096, 2.0, 1e6, 2e6, 1, "cpu", "fp32")
    assert m["tokens_per_s"] == 2048
    assert m["tflops_per_device_chinchilla"] == pytest.approx(2048 * 1e6 / 1e12)
    assert m["tflops_per_device_6n"] == pytest.approx(2048 * 2e6 / 1e12)
    assert m["mfu_chinchilla"] is None and m["mfu_6n"] is None and m["peak_tflops_per_device"] is None


def test_throughput_metrics_with_flops_module():
    flops = pytest.importorskip("workflow.model.flops")
    shape = flops.Shape(layers=1, hidden=4, heads=1, ffn_hidden=16, vocab_size=10, seq_length=2)
    # Chinchilla forward per sequence (s=2, d=4, v=10, w=4, h=1, f=16):
    # embeddings 2*2*10*4=160; qkv 2*3*2*4*4=192; logits 2*4*4=32; softmax 3*1*4=12;
    # reduction 32; project 2*2*4*4=64; dense 2*2*4*16*2=512; final 160 -> forward 1164;
    # training per token = 3 * 1164 / 2 = 1746.
    fpt = flops.chinchilla_training_flops_per_token(shape)
    assert fpt == pytest.approx(1746)
    m = throughput_metrics(1e12, 1.0, fpt, flops.flops_6nd(100, 1), 1, "NVIDIA A100-SXM4-80GB", "bf16")
    assert m["tflops_per_device_chinchilla"] == pytest.approx(1746)
    assert m["tflops_per_device_6n"] == pytest.approx(600)
    assert m["mfu_6n"] == pytest.approx(600 / 312)


@pytest.mark.parametrize("args", [(0, 1.0, 1), (10, 0.0, 1), (10, 1.0, 0), (-5, 1.0, 1)])
def test_throughput_metrics_bad_input(args):
    tokens, seconds, n = args
    with pytest.raises(ScaleDAGError):
        throughput_metrics(tokens, seconds, 1.0, 1.0, n, "cpu", "fp32")


def test_config_table_extends_and_overrides_the_builtin_peaks():
    peaks = {"L40S": {"bf16": 362.0, "fp32": 91.6}, "A100": {"bf16": 300.0}}
    assert peak_flops("NVIDIA L40S", "bf16") is None  # unknown to the built-in table
    assert peak_flops("NVIDIA L40S", "bf16", peaks) == pytest.approx(362e12)
    assert peak_flops("NVIDIA A100-SXM4-80GB", "bf16", peaks) == pytest.approx(300e12)
    assert peak_flops("NVIDIA H100 80GB HBM3", "bf16", peaks) == pytest.approx(989e12)  # untouched
    m = throughput_metrics(1e6, 1.0, 1e6, 1e6, 1, "NVIDIA L40S", "bf16", peaks)
    assert m["mfu_chinchilla"] == pytest.approx(1e12 / 362e12)
