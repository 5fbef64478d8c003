"""What this CPU runs natively: bf16 (AVX-512 BF16 or AMX) or not.

The check is a pure function of torch's capability report (`torch.cpu.get_capabilities()`, a
mapping of flags, and `torch.backends.cpu.get_cpu_capability()`, the ISA string ATen dispatches on:
DEFAULT, AVX2, AVX512, ...). The ISA string alone cannot say "bf16": an AVX512 CPU may or may not
have the BF16 extension, so the flags decide, and the string is kept for the message.

Without native bf16, PyTorch runs bf16 convolutions through slow emulation: measured on this
project's 2-core AMD EPYC (Zen 3, AVX2), the Hayao network was 9.5x slower in bf16 than in fp32.

Native bf16 is necessary, not sufficient: on a 2-core Intel Xeon with AVX-512 BF16 but no AMX
(2026-12-02), oneDNN ran the bf16 convolutions natively (`brg_conv_fwd:avx512_core_bf16`) and the
network was still 0.61x as fast as fp32 (1.91 vs 3.14 fps at 256x152; parity 53.8 dB): there
`vdpbf16ps` has no more multiply-adds per cycle than two fp32 FMA ports, and the conversions cost
extra. With AMX (a 2-core Intel Xeon, 2026-12-02) the same network ran 3.7x as fast in bf16 as in
fp32 at 320x180 (9.04 vs 2.43 fps; ONNX Runtime fp32 2.80; parity 53.5 dB). So `auto` never picks
bf16 from the flags alone; `choose.cpu_choice` times it first
(`python -m cartoonize.measure.cpu_precision` shows the figures).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

from cartoonize.errors import CartoonizeWarning

# flags in torch.cpu.get_capabilities() that mean bf16 matrix products run in hardware
NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


def native_bf16(capabilities: Mapping[str, Any]) -> bool:
    """Whether a CPU with these capabilities (torch.cpu.get_capabilities(), optionally with the
    ISA string under "isa") runs bf16 natively."""
    return any(bool(capabilities.get(flag)) for flag in NATIVE_BF16_FLAGS)


def cpu_capabilities() -> dict[str, Any]:
    """This CPU's flags as torch reports them, with ATen's ISA string under "isa"."""
    import torch

    caps = dict(torch.cpu.get_capabilities())
    caps["isa"] = torch.backends.cpu.get_cpu_capability()
    return caps


def describe_bf16(capabilities: Mapping[str, Any]) -> str:
    """"AVX2, no AVX-512 BF16 or AMX" / "AVX512 with avx512_bf16"."""
    isa = capabilities.get("isa", "?")
    found = [flag for flag in NATIVE_BF16_FLAGS if capabilities.get(flag)]
    return f"{isa} with {', '.join(found)}" if found else f"{isa}, no AVX-512 BF16 or AMX"


def warn_if_slow_bf16(capabilities: Mapping[str, Any] | None = None) -> bool:
    """Warn (CartoonizeWarning) that bf16 will be slow where this CPU lacks native bf16; whether it did."""
    caps = cpu_capabilities() if capabilities is None else capabilities
    if native_bf16(caps):
        return False
    warnings.warn(
        f"--precision bf16 on this CPU ({caps.get('cpu_name', 'CPU')}: {describe_bf16(caps)}) is "
        "emulated and much slower than fp32 (about 10x measured on an AVX2 CPU); use --precision fp32",
        CartoonizeWarning,
        stacklevel=2,
    )
    return True
