"""What the machine offers a run: the CPU's name and its vector and matrix extensions, whether a
CUDA device is there, and whether bfloat16 products run on matrix units or are emulated. Every
benchmark prints `describe()`; `--precision auto` and `--device auto` decide from here."""

from __future__ import annotations

import functools
import platform
import warnings

import torch

from sparserl.errors import ConfigWarning

EXTENSIONS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")
"""The CPU flags (as /proc/cpuinfo names them) that decide sparserl's kernels and precision."""


@functools.cache
def _cpuinfo() -> tuple[str, frozenset[str]]:
    """The first processor's model name and flags (Linux), or the platform's name and no flags."""
    name, flags = "", frozenset()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "model name" and not name:
                    name = value.strip()
                elif key == "flags" and not flags:
                    flags = frozenset(value.split())
    except OSError:  # not Linux
        pass
    return name or platform.processor() or platform.machine(), flags


def cpu_name() -> str:
    return _cpuinfo()[0] or "unknown CPU"


def cpu_extensions() -> list[str]:
    """Which of EXTENSIONS this CPU has."""
    flags = _cpuinfo()[1]
    return [name for name in EXTENSIONS if name in flags]


def cpu_has_bf16_matrix_units() -> bool:
    """bfloat16 products in hardware: AMX or AVX512-BF16 (oneDNN uses them); else emulated."""
    flags = _cpuinfo()[1]
    return "amx_bf16" in flags or "avx512_bf16" in flags


def bf16_hardware() -> str:
    """What runs bfloat16 products here: AMX tiles (≈ 5x float32 GEMMs), AVX512-BF16 dot products
    (≈ 2.5x on a Zen 4) or nothing (emulated, slower than float32)."""
    flags = _cpuinfo()[1]
    return "AMX" if "amx_bf16" in flags else "AVX512-BF16" if "avx512_bf16" in flags else "emulated"


def cuda_available() -> bool:
    return torch.cuda.is_available()


def cuda_has_bf16() -> bool:
    return cuda_available() and torch.cuda.is_bf16_supported()


def resolve_device(choice: str, streaming: bool = False) -> torch.device:
    """The device of a run's networks, optimisers and replay for `device` cpu, cuda or auto (CUDA
    where there is a GPU; the CPU for streaming learners, whose batch-1 steps gain nothing there).
    A device that is not there is a ConfigError naming it."""
    from sparserl.errors import ConfigError

    if choice == "cuda":
        if streaming:
            raise ConfigError("device cuda: streaming learners update one transition at a time, which a GPU does "
                              "not speed up; use device cpu (or auto)")
        if not cuda_available():
            built = "a CPU-only build" if torch.version.cuda is None else f"built for CUDA {torch.version.cuda}"
            raise ConfigError(f"device cuda: no CUDA device is visible to torch {torch.__version__} ({built}); "
                              f"use device cpu or auto")
        return torch.device("cuda")
    if choice == "auto" and cuda_available() and not streaming:
        return torch.device("cuda")
    return torch.device("cpu")


def update_dtype(precision: str, device_type: str = "cpu") -> torch.dtype | None:
    """The autocast dtype of the replay updates for `precision` (fp32, bf16, auto) on this machine:
    bfloat16, or None for float32. bf16 asked for where it is emulated draws a ConfigWarning."""
    units = cuda_has_bf16() if device_type == "cuda" else cpu_has_bf16_matrix_units()
    if precision == "fp32" or (precision == "auto" and not units):
        return None
    if not units:
        warnings.warn(f"precision bf16: {cpu_name() if device_type == 'cpu' else 'this GPU'} has no bfloat16 matrix "
                      f"units (AMX or AVX512-BF16), so bf16 products are emulated: about 15x slower than float32 "
                      f"on an AMD Zen 3 (a 256x256x256 product); --precision auto keeps float32 here",
                      ConfigWarning, stacklevel=2)
    return torch.bfloat16


def precision_line(dtype: torch.dtype | None, precision: str) -> str:
    """The start-of-run line that says which precision the updates run in, and why."""
    if dtype is None:
        why = " (no bfloat16 matrix units here)" if precision == "auto" else ""
        return f"precision: float32{why}"
    return "precision: bf16 autocast for the updates' products (float32 weights, gradients and optimiser state)"


def rng_untouched(device: torch.device | str = "cpu"):
    """A context whose random draws leave the global generators as they were: the CPU's, and the
    CUDA device's when `device` is one (diagnostics and throw-away modules draw inside it)."""
    device = torch.device(device)
    return torch.random.fork_rng(devices=[device.index or 0] if device.type == "cuda" else [])


def machine() -> str:
    """A short name of the machine a run trains on: the CPU with the extensions that decide its
    kernels and `--precision auto` (two CPUs of one name may differ there), and the CUDA device if
    there is one."""
    cpu = f"{cpu_name()} ({', '.join(cpu_extensions()) or 'no ' + '/'.join(EXTENSIONS[:2])})"
    return f"{cpu} + {torch.cuda.get_device_name(0)}" if cuda_available() else cpu


def describe() -> str:
    """One line naming the CPU, its extensions and any CUDA device (benchmarks print it)."""
    text = f"{cpu_name()} ({', '.join(cpu_extensions()) or 'none of ' + '/'.join(EXTENSIONS)}; " \
           f"bf16 products: {bf16_hardware()}), " \
           f"{torch.get_num_threads()} torch threads"
    if cuda_available():
        text += f"; CUDA: {torch.cuda.get_device_name(0)}"
    return text
