"""Machine and library metadata, precision flags, and measured ceilings (cached per device)."""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import subprocess
import time
from pathlib import Path

import torch

from . import precision

CACHE_DIR = Path(os.environ.get("CONVBENCH_CACHE", Path.home() / ".cache" / "convbench"))


def _cmd(args: list[str], timeout: float = 10) -> str | None:
    try:
        out = subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=True)
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None


def git_sha() -> str | None:
    sha = _cmd(["git", "rev-parse", "HEAD"], timeout=5)
    if sha and _cmd(["git", "status", "--porcelain", "--untracked-files=no"]):
        sha += "-dirty"
    return sha


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device_name(device: str) -> str:
    dev = torch.device(device)
    if dev.type == "cuda":
        return torch.cuda.get_device_name(dev)
    return cpu_name()


def device_info(device: str) -> dict:
    dev = torch.device(device)
    info: dict = {"device": device, "device_name": device_name(device)}
    if dev.type == "cuda":
        props = torch.cuda.get_device_properties(dev)
        info.update(
            capability=list(torch.cuda.get_device_capability(dev)),
            sm_count=props.multi_processor_count,
            memory_bytes=props.total_memory,
            l2_bytes=getattr(props, "L2_cache_size", None),
            driver=_cmd(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"]),
        )
    else:
        info.update(threads=torch.get_num_threads(), cores=os.cpu_count())
    return info


def library_versions() -> dict:
    try:
        import triton

        triton_version = triton.__version__
    except ImportError:
        triton_version = None
    return {
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "triton": triton_version,
        "python": platform.python_version(),
    }


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def _best_time_s(fn, dev: torch.device, reps: int) -> float:
    fn()
    _sync(dev)
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        _sync(dev)
        best = min(best, time.perf_counter() - t0)
    return best


def measure_ceilings(device: str) -> dict:
    """Copy bandwidth (bytes read + written) and matmul rate per dtype, measured here, now."""
    dev = torch.device(device)
    cuda = dev.type == "cuda"
    n_bytes = 1 << 30 if cuda else 1 << 28
    bufs = [torch.empty(n_bytes // 4, dtype=torch.float32, device=dev).uniform_()]
    bufs.append(torch.empty_like(bufs[0]))
    copy_s = _best_time_s(lambda: bufs[1].copy_(bufs[0]), dev, 20 if cuda else 5)
    out = {"copy_gbps": 2 * n_bytes / copy_s / 1e9, "matmul_tflops": {}}
    bufs.clear()  # free the 2 GiB before the matmuls
    n = 8192 if cuda else 1024
    dtypes = ("float32", "bfloat16", "float16") if cuda else ("float32",)
    for name in dtypes:
        dt = getattr(torch, name)
        a = torch.randn(n, n, device=dev, dtype=torch.float32).to(dt)
        b = torch.randn(n, n, device=dev, dtype=torch.float32).to(dt)
        variants = [(name, False)]
        if cuda and name == "float32":
            variants = [("float32", False), ("float32_tf32", True)]
        for label, tf32 in variants:
            saved = torch.backends.cuda.matmul.allow_tf32
            torch.backends.cuda.matmul.allow_tf32 = tf32
            try:
                t = _best_time_s(lambda a=a, b=b: a @ b, dev, 10 if cuda else 3)
            finally:
                torch.backends.cuda.matmul.allow_tf32 = saved
            out["matmul_tflops"][label] = 2 * n**3 / t / 1e12
        del a, b
    return out


def ceilings(device: str, refresh: bool = False) -> dict:
    """Measured ceilings for this device, cached on disk by device name and torch version."""
    name = device_name(device)
    key = f"{name}-{torch.__version__}-{torch.get_num_threads()}".replace("/", "_").replace(" ", "_")
    path = CACHE_DIR / f"ceilings-{key}.json"
    if not refresh and path.exists():
        try:
            data = json.loads(path.read_text())
            data["cached"] = True
            return data
        except (OSError, ValueError):
            pass
    data = measure_ceilings(device)
    data["measured_at"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    data["device_name"] = name
    try:
        CACHE_DIR.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(data, indent=2))
    except OSError:
        pass
    data["cached"] = False
    return data


def sm_clock(device: str) -> dict:
    """SM clock and active slowdown reasons now (nvidia-smi); empty where not available."""
    dev = torch.device(device)
    if dev.type != "cuda":
        return {}
    idx = dev.index if dev.index is not None else torch.cuda.current_device()
    fields = "clocks.sm,clocks.max.sm,clocks_event_reasons.sw_power_cap,clocks_event_reasons.hw_slowdown,clocks_event_reasons.sw_thermal_slowdown"
    out = _cmd(["nvidia-smi", f"--id={idx}", f"--query-gpu={fields}", "--format=csv,noheader,nounits"], 5)
    if not out:
        return {}
    parts = [p.strip() for p in out.split(",")]
    try:
        sm, smax = float(parts[0]), float(parts[1])
    except (ValueError, IndexError):
        return {}
    active = [p for p in parts[2:] if p.lower() not in ("not active", "[n/a]", "n/a")]
    return {"sm_clock_mhz": sm, "sm_clock_max_mhz": smax, "throttled": bool(active)}


def meta(devices: list[str], config: dict | None = None, config_hash: str | None = None,
         measure_ceiling: bool = True) -> dict:
    return {
        "convbench": __import__("convbench").__version__,
        "started_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "host": platform.node(),
        "platform": platform.platform(),
        "cpu": cpu_name(),
        "threads": torch.get_num_threads(),
        "libraries": library_versions(),
        "precision_flags": precision.flags(),
        "devices": {d: device_info(d) for d in devices},
        "ceilings": {d: ceilings(d) for d in devices} if measure_ceiling else {},
        "git_sha": git_sha(),
        "config": config,
        "config_hash": config_hash,
    }
