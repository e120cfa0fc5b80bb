"""Model FLOPs utilisation: achieved training FLOP/s per device over the device's dense peak.

Two FLOP counts are reported side by side (see `workflow.model.flops`): the Chinchilla Appendix F
count (`chinchilla_training_flops_per_token(shape)`) and 6N (`flops_6nd(n_params, 1)`).
Neither counts activation recomputation, so this is MFU, not hardware FLOPs utilisation.

Peaks are dense (no 2:4 sparsity) vendor figures in TFLOP/s per *device as torch sees it*:
each MI250X GCD is its own torch device, so "AMD Instinct MI250X" maps to the per-GCD peak.
A peak of None means unknown (CPUs, or a dtype the device has no fast path for); MFU is then None.
"""

from __future__ import annotations

from workflow.errors import ScaleDAGError

# name -> {dtype: dense TFLOP/s per device or None}. fp32 is the non-tensor (CUDA core / vector)
# peak for NVIDIA, since torch leaves TF32 matmul off by default; "tf32" is the dense TF32 tensor peak.
# Sources (bf16/fp16 rounded down to the commonly quoted 989 / 756 for H100/H200):
#  H100 SXM / PCIe / NVL: NVIDIA H100 Tensor Core GPU datasheet (sparsity figures halved):
#    SXM bf16/fp16 989.4, tf32 494.7, fp32 67; PCIe 756.5 / 378 / 51; NVL 835.5 / 417.5 / 60.
#  H200 SXM / NVL: NVIDIA H200 datasheet: SXM 989.4 / 494.7 / 67 (same die as H100 SXM); NVL 835.5 / 417.5 / 60.
#  A100 (SXM and PCIe alike): NVIDIA A100 datasheet: bf16/fp16 312, tf32 156, fp32 19.5.
#  V100: NVIDIA V100 datasheet: SXM2 fp16 tensor 125, fp32 15.7; PCIe 112 / 14; V100S 130 / 16.4.
#    No bf16 hardware (emulated by torch): bf16 peak None.
#  MI250X: AMD Instinct MI250X datasheet: bf16/fp16 383 (both GCDs), fp32 matrix 95.7
#    (vector 47.9); per GCD = half. MI250: 362.1 / 90.5. MI210: 181 / 45.3.
#  MI300X: AMD Instinct MI300X datasheet: bf16/fp16 1307.4, fp32 matrix 163.4.
#  AMD fp32 uses the matrix (MFMA) peak because rocBLAS runs fp32 GEMMs on matrix cores.
PEAK_TFLOPS: dict[str, dict[str, float | None] | None] = {
    "H100 SXM": {"bf16": 989.0, "fp16": 989.0, "tf32": 494.7, "fp32": 67.0},
    "H100 PCIe": {"bf16": 756.0, "fp16": 756.0, "tf32": 378.0, "fp32": 51.0},
    "H100 NVL": {"bf16": 835.5, "fp16": 835.5, "tf32": 417.5, "fp32": 60.0},
    "H200": {"bf16": 989.0, "fp16": 989.0, "tf32": 494.7, "fp32": 67.0},
    "H200 NVL": {"bf16": 835.5, "fp16": 835.5, "tf32": 417.5, "fp32": 60.0},
    "A100": {"bf16": 312.0, "fp16": 312.0, "tf32": 156.0, "fp32": 19.5},
    "V100": {"bf16": None, "fp16": 125.0, "tf32": None, "fp32": 15.7},
    "V100 PCIe": {"bf16": None, "fp16": 112.0, "tf32": None, "fp32": 14.0},
    "V100S": {"bf16": None, "fp16": 130.0, "tf32": None, "fp32": 16.4},
    "MI250X GCD": {"bf16": 191.5, "fp16": 191.5, "fp32": 47.85},
    "MI250X (whole)": {"bf16": 383.0, "fp16": 383.0, "fp32": 95.7},
    "MI250 GCD": {"bf16": 181.05, "fp16": 181.05, "fp32": 45.25},
    "MI210": {"bf16": 181.0, "fp16": 181.0, "fp32": 45.3},
    "MI300X": {"bf16": 1307.4, "fp16": 1307.4, "fp32": 163.4},
    "cpu": None,
}

# (all substrings that must appear in the upper-cased torch device name, table key); first match
# wins, so more specific rules come first. Examples of torch.cuda.get_device_name():
# "NVIDIA H100 80GB HBM3", "NVIDIA H100 PCIe", "NVIDIA H100 NVL", "NVIDIA H200", "NVIDIA GH200 480GB",
# "NVIDIA A100-SXM4-80GB", "NVIDIA A100 80GB PCIe", "Tesla V100-SXM2-32GB", "Tesla V100-PCIE-16GB",
# "AMD Instinct MI250X", "AMD Instinct MI250X/MI250", "AMD Instinct MI300X".
_MATCH_RULES: list[tuple[tuple[str, ...], str]] = [
    (("H200", "NVL"), "H200 NVL"),
    (("H200",), "H200"),  # also GH200: same Hopper SXM peaks
    (("H100", "PCIE"), "H100 PCIe"),
    (("H100", "NVL"), "H100 NVL"),
    (("H100",), "H100 SXM"),  # "H100 80GB HBM3", "H100 SXM5"
    (("H800", "PCIE"), "H100 PCIe"),
    (("H800",), "H100 SXM"),
    (("A100",), "A100"),
    (("A800",), "A100"),
    (("V100S",), "V100S"),
    (("V100", "PCIE"), "V100 PCIe"),
    (("V100",), "V100"),
    (("MI250X",), "MI250X GCD"),  # one torch device per GCD
    (("MI250",), "MI250 GCD"),
    (("MI210",), "MI210"),
    (("MI300X",), "MI300X"),
]

_DTYPES = {
    "bf16": "bf16",
    "bfloat16": "bf16",
    "torch.bfloat16": "bf16",
    "fp16": "fp16",
    "float16": "fp16",
    "half": "fp16",
    "torch.float16": "fp16",
    "fp32": "fp32",
    "float32": "fp32",
    "float": "fp32",
    "torch.float32": "fp32",
    "tf32": "tf32",
}


def normalize_dtype(dtype) -> str:
    key = str(dtype).strip().lower()
    if key not in _DTYPES:
        raise ScaleDAGError(f"dtype: expected one of bf16, fp16, fp32, tf32 (or torch names), got {dtype!r}")
    return _DTYPES[key]


def match_device(device_name: str | None) -> str | None:
    """Table key for a device name (an exact key, or a torch.cuda.get_device_name() string); None if unknown."""
    if not device_name:
        return "cpu"
    if device_name in PEAK_TFLOPS:
        return device_name
    upper = device_name.upper()
    for needles, key in _MATCH_RULES:
        if all(n in upper for n in needles):
            return key
    if upper in ("CPU", "X86_64", "AARCH64", "ARM64", "I386", "I686") or "CPU" in upper:
        return "cpu"
    return None


def _configured_entry(device_name: str | None, peaks: dict | None) -> dict | None:
    """The `device_peaks` entry of config.yaml for this device: its key equals the table key or
    appears (case-insensitively) in the torch device name. Config entries win over the built-in table."""
    if not peaks or not device_name:
        return None
    key = match_device(device_name)
    for name, entry in peaks.items():
        if name == key or name.upper() in device_name.upper():
            return entry
    return None


def peak_flops(device_name: str | None, dtype, peaks: dict | None = None) -> float | None:
    """Dense peak FLOP/s (not TFLOP/s) of one device for `dtype`; None when unknown.

    `peaks` is config.yaml's `device_peaks` table (name -> {dtype: TFLOP/s}); it extends and
    overrides the built-in PEAK_TFLOPS for devices the table lacks or rates differently."""
    key = match_device(device_name)
    entry = _configured_entry(device_name, peaks) or (PEAK_TFLOPS.get(key) if key else None)
    if entry is None:
        return None
    tflops = entry.get(normalize_dtype(dtype))
    return None if tflops is None else tflops * 1e12


def throughput_metrics(
    tokens: float,
    seconds: float,
    flops_per_token_chinchilla: float | None,
    flops_per_token_6n: float | None,
    n_devices: int,
    device_name: str | None,
    dtype,
    peaks: dict | None = None,
) -> dict:
    """Tokens/s, achieved TFLOP/s per device and MFU under both FLOP counts.

    `tokens` are all tokens processed by all `n_devices` (world size: tp x pp x dp) in `seconds`
    of training-step time. A FLOP count of None gives None for its two entries; MFU is None when
    the device's peak is unknown.
    """
    if not tokens or tokens < 0:
        raise ScaleDAGError(f"throughput_metrics: tokens must be positive, got {tokens!r}")
    if not seconds or seconds <= 0:
        raise ScaleDAGError(f"throughput_metrics: seconds must be positive, got {seconds!r}")
    if not isinstance(n_devices, int) or n_devices < 1:
        raise ScaleDAGError(f"throughput_metrics: n_devices must be a positive integer, got {n_devices!r}")
    peak = peak_flops(device_name, dtype, peaks)
    out = {
        "tokens_per_s": tokens / seconds,
        "tokens_per_s_per_device": tokens / seconds / n_devices,
        "n_devices": n_devices,
        "device": device_name,
        "device_key": match_device(device_name),
        "dtype": normalize_dtype(dtype),
        "peak_tflops_per_device": None if peak is None else peak / 1e12,
    }
    for label, fpt in (("chinchilla", flops_per_token_chinchilla), ("6n", flops_per_token_6n)):
        achieved = None if fpt is None else float(fpt) * tokens / seconds / n_devices
        out[f"tflops_per_device_{label}"] = None if achieved is None else achieved / 1e12
        out[f"mfu_{label}"] = None if achieved is None or peak is None else achieved / peak
    return out
