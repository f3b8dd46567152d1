"""Reproducibility: seeds, thread counts, deterministic kernels, and the environment record.

Determinism here means run-to-run equality on one machine with one thread count; it never
means CPU/GPU equality (PyTorch does not promise that), so notebooks compare across
machines with tolerances and print rounded summaries.
"""

from __future__ import annotations

import os
import platform
import random
import warnings
from typing import Any

import numpy as np
import torch

THREADS_ENV = "COMPANION_THREADS"


def setup(seed: int, threads: int | None = None, deterministic: bool = True) -> torch.device:
    """Seed Python, NumPy and torch; pin threads; select deterministic kernels; return the device.

    ``threads=None`` reads ``$COMPANION_THREADS`` (set to 1 by ``companion run --profile ci``
    and by the test suite, so stored outputs do not depend on the core count) and otherwise
    leaves the library defaults alone.
    """
    if threads is None and os.environ.get(THREADS_ENV):
        threads = int(os.environ[THREADS_ENV])
    if threads is not None:
        if threads < 1:
            raise ValueError(f"threads must be >= 1, got {threads}")
        torch.set_num_threads(threads)
        from threadpoolctl import threadpool_limits

        threadpool_limits(limits=threads)  # NumPy/SciPy BLAS as well as torch
    # cuBLAS needs this before the CUDA context exists to be deterministic on older torch.
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(deterministic, warn_only=True)
    torch.backends.cudnn.deterministic = deterministic
    torch.backends.cudnn.benchmark = not deterministic
    # TF32 changes matmul results at ~3e-4 relative: off unless a run asks for speed.
    torch.backends.cuda.matmul.allow_tf32 = not deterministic
    torch.backends.cudnn.allow_tf32 = not deterministic
    warnings.filterwarnings("ignore", message=".*does not have a deterministic implementation.*")
    return device()


def device() -> torch.device:
    """The CUDA device when one is visible, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def environment() -> dict[str, Any]:
    """Versions and hardware, recorded in every ledger and printed in every notebook."""
    import matplotlib
    import pandas
    import scipy
    import sklearn

    env: dict[str, Any] = {
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "pandas": pandas.__version__,
        "scikit-learn": sklearn.__version__,
        "matplotlib": matplotlib.__version__,
        "cpu_threads": torch.get_num_threads(),
        **cpu(),
        "device": "cpu",
        "device_name": platform.processor() or platform.machine(),
    }
    if torch.cuda.is_available():
        env["device"] = "cuda"
        env["device_name"] = torch.cuda.get_device_name(0)
        env["cuda"] = torch.version.cuda
    return env


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux, ``sysctl`` on macOS), else the machine."""
    try:
        for line in open("/proc/cpuinfo", encoding="utf-8"):
            if line.lower().startswith(("model name", "hardware", "cpu model")):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    if platform.system() == "Darwin":
        import subprocess

        try:
            return subprocess.run(["sysctl", "-n", "machdep.cpu.brand_string"], capture_output=True,
                                  text=True, timeout=5).stdout.strip() or platform.machine()
        except (OSError, subprocess.SubprocessError):
            pass
    return platform.processor() or platform.machine()


def cpu() -> dict[str, Any]:
    """What decides the last bits of CPU arithmetic: the CPU model, the instruction-set level
    torch dispatches to (``ATEN_CPU_CAPABILITY`` can lower it), and the BLAS libraries loaded."""
    from threadpoolctl import threadpool_info

    blas = sorted({f"{i.get('internal_api')} {i.get('version')}" for i in threadpool_info()
                   if i.get("user_api") == "blas"})
    torch_blas = "mkl" if torch.backends.mkl.is_available() else "other"
    return {
        "cpu_model": cpu_model(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "blas": ", ".join(blas + [f"torch: {torch_blas}"]),
        "code_path_env": {k: os.environ[k] for k in CODE_PATH_ENV if k in os.environ},
    }


#: environment variables that select CPU code paths (the perturbation run sets them)
CODE_PATH_ENV = ("ATEN_CPU_CAPABILITY", "MKL_ENABLE_INSTRUCTIONS", "ONEDNN_MAX_CPU_ISA",
                 "OPENBLAS_CORETYPE", "MKL_CBWR")


def describe_environment() -> str:
    """One line per item of :func:`environment`, for an ``NBVAL_IGNORE_OUTPUT`` cell."""
    return "\n".join(f"{key:>14}: {value}" for key, value in environment().items())
