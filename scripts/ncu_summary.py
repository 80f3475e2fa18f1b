"""One row per profiled kernel of an `ncu --csv --page details` file (scripts/ncu_depthwise.py):
NVTX range (the plan), duration, DRAM / L1 / L2 throughput, and, where collected, global load and
store sectors and L2 write sectors. Usage: python3 scripts/ncu_summary.py FILE.csv[.gz]"""

from __future__ import annotations

import csv
import gzip
import io
import sys

COLS = {
    "Duration": "duration", "DRAM Throughput": "DRAM %", "L1/TEX Cache Throughput": "L1 %",
    "L2 Cache Throughput": "L2 %", "Registers Per Thread": "regs",
    "Achieved Occupancy": "occupancy %",
    "Compute (SM) Throughput": "SM %", "Executed Instructions": "instructions",
    "Issue Slots Busy": "issue busy %", "Warp Cycles Per Issued Instruction": "cycles/issue",
    "l1tex__t_sectors_pipe_lsu_mem_global_op_ld.sum": "ld sectors",
    "l1tex__t_sectors_pipe_lsu_mem_global_op_st.sum": "st sectors",
    "lts__t_sectors_op_write.sum": "L2 write sectors",
    "dram__bytes_read.sum": "DRAM read", "dram__bytes_write.sum": "DRAM write",
    "smsp__inst_executed.sum": "warp instructions",
}


def _innermost(stack: str) -> str:
    """The innermost NVTX range name of ncu's push/pop column ('<domain>:name:none:...')."""
    parts = [p for p in stack.split('"') if p.strip().startswith("<default domain>:")]
    if not parts:
        return ""
    name = parts[-1].strip().removeprefix("<default domain>:")
    return name.replace(":none", "")


def main(path: str) -> None:
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt") as f:
        lines = [line for line in f if line.startswith('"')]
    rows = list(csv.DictReader(io.StringIO("".join(lines))))
    rng = next(k for k in rows[0] if "Push/Pop" in k)
    kernels: dict[str, dict] = {}
    for r in rows:
        k = kernels.setdefault(r["ID"], {"range": _innermost(r[rng])})
        if r["Metric Name"] in COLS:
            k[COLS[r["Metric Name"]]] = f"{r['Metric Value']} {r['Metric Unit']}".strip()
    present = [c for c in COLS.values() if any(c in k for k in kernels.values())]
    print("| id | range | " + " | ".join(present) + " |")
    print("|---|---|" + "---|" * len(present))
    for i, k in kernels.items():
        print(f"| {i} | {k['range']} | " + " | ".join(k.get(c, "") for c in present) + " |")


if __name__ == "__main__":
    main(sys.argv[1])
