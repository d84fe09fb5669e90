"""How closely do the committed results reproduce on another machine? Measured, per metric family.

    python benchmarks/reproduction_spread.py                       # the full grid: 12 configurations
    python benchmarks/reproduction_spread.py --capabilities avx2 --threads 1 --blas native --json spread.json

The committed numbers move with the CPU's kernels: ATen's vectorised kernels (picked per CPU, or forced with
``ATEN_CPU_CAPABILITY``), MKL's and oneDNN's own ISA dispatch, and the thread count all change the order of
floating-point reductions, and 300 training steps amplify that. This script retrains the runs
``tests/test_committed_results.py`` retrains, through the same code (``tests/committed_runs.py``), once per
configuration of the grid, each in a fresh process:

- ``ATEN_CPU_CAPABILITY`` = ``default``, ``avx2``, ``avx512`` (a capability the CPU lacks falls back to the best
  one it has: the report says which ran);
- torch threads = 1 and 2;
- BLAS ``native`` (MKL and oneDNN dispatch on the real CPU) or ``capped`` (``MKL_ENABLE_INSTRUCTIONS`` and
  ``ONEDNN_MAX_CPU_ISA`` held to the same ISA as ATen: what a machine without the newer instructions runs).

It prints, per metric family (retrieval R@k, MdR, linear and k-NN probes, stability numbers), the largest deviation
from the committed value over the grid, where it was seen, and the tolerance ``MARGIN`` x that (at least the
family's floor) that the test uses. ``--json PATH`` keeps every configuration's deviations.

A run trained in a seed batch is retrained in its batch by its own command, whose ``--threads`` wins over the
grid's thread count. Each configuration retrains the three runs' batches of ten seeds (and the warm start's init
stages): 59 to 149 s on the 2-core development machine, 16 minutes for the grid. README.md ("Committed results")
gives the figures measured and the tolerances taken from them.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from pmrl_bench.device import cpu_model

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from committed_runs import FAMILIES, FLOORS, MARGIN  # noqa: E402  (tests/ is not a package)

CAPABILITIES = ("default", "avx2", "avx512")
# The ISA each capability stands for, as MKL (MKL_ENABLE_INSTRUCTIONS) and oneDNN (ONEDNN_MAX_CPU_ISA) name it.
BLAS_CAPS = {"default": ("SSE4_2", "SSE41"), "avx2": ("AVX2", "AVX2"), "avx512": ("AVX512", "AVX512_CORE")}


def worker(capability: str) -> None:
    """Retrain every case in this process (configured by the parent's environment) and print one JSON line."""
    import torch
    from committed_runs import CASES, compare, retrain, stored_result

    threads = int(os.environ["PMRL_SPREAD_THREADS"])
    torch.set_num_threads(threads)
    comparisons = []
    for task, objective, protocol in CASES:
        stored = stored_result(task, objective, protocol)
        if stored is None:
            raise SystemExit(f"no committed result for {task}/{objective} under {protocol}")
        with tempfile.TemporaryDirectory() as workdir:
            outcome = retrain(stored, Path(workdir))
        comparisons += [[c.family, f"{objective}-{protocol}: {c.name}", c.deviation, c.stored, c.retrained]
                        for c in compare(stored, outcome)]
    print(json.dumps({"requested": capability, "ran": torch.backends.cpu.get_cpu_capability(),
                      "threads": torch.get_num_threads(), "comparisons": comparisons}))


def run_configuration(capability: str, threads: int, blas: str) -> dict[str, Any]:
    env = {**os.environ, "ATEN_CPU_CAPABILITY": capability, "PMRL_SPREAD_THREADS": str(threads),
           "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads), "PMRL_BENCH_LOAD_PLUGINS": ""}
    for name in ("MKL_ENABLE_INSTRUCTIONS", "ONEDNN_MAX_CPU_ISA"):
        env.pop(name, None)
    if blas == "capped":
        env["MKL_ENABLE_INSTRUCTIONS"], env["ONEDNN_MAX_CPU_ISA"] = BLAS_CAPS[capability]
    started = time.perf_counter()
    done = subprocess.run([sys.executable, __file__, "--worker", capability], env=env, capture_output=True,
                          text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"the {capability}/{threads} thread(s)/{blas} configuration failed:\n{done.stderr}")
    record = json.loads(done.stdout.strip().splitlines()[-1])
    return {**record, "blas": blas, "seconds": round(time.perf_counter() - started, 1)}


def spread(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per family: the largest deviation over every configuration, where it was, and the tolerance it implies."""
    worst: dict[str, dict[str, Any]] = {}
    for record in records:
        where = f"{record['ran']}, {record['threads']} thread(s), BLAS {record['blas']}"
        for family, name, deviation, stored, retrained in record["comparisons"]:
            if family not in worst or deviation > worst[family]["deviation"]:
                worst[family] = {"deviation": deviation, "metric": name, "stored": stored,
                                 "retrained": retrained, "configuration": where}
    for family, entry in worst.items():
        entry["tolerance"] = max(FLOORS[family], MARGIN * entry["deviation"])
    return worst


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--capabilities", default=",".join(CAPABILITIES), help="comma-separated, of "
                        + ", ".join(CAPABILITIES))
    parser.add_argument("--threads", default="1,2", help="comma-separated torch thread counts")
    parser.add_argument("--blas", default="native,capped", help="native, capped or both (comma-separated)")
    parser.add_argument("--json", type=Path, help="write every configuration's deviations here")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(args.worker)
        return 0
    capabilities = args.capabilities.split(",")
    if unknown := [c for c in capabilities if c not in CAPABILITIES]:
        parser.error(f"--capabilities: unknown {', '.join(unknown)}; use {', '.join(CAPABILITIES)}")
    blas_modes = args.blas.split(",")
    if unknown := [b for b in blas_modes if b not in ("native", "capped")]:
        parser.error(f"--blas: unknown {', '.join(unknown)}; use native and/or capped")
    threads = [int(t) for t in args.threads.split(",")]
    print(f"CPU: {cpu_model()}; {os.cpu_count()} logical CPUs")
    records: list[dict[str, Any]] = []
    for capability in capabilities:
        for count in threads:
            for blas in blas_modes:
                record = run_configuration(capability, count, blas)
                records.append(record)
                if args.json:  # after every configuration: a long grid stopped halfway keeps what it measured
                    args.json.write_text(json.dumps({"cpu": cpu_model(), "spread": spread(records),
                                                     "configurations": records}, indent=1))
                fallback = "" if record["ran"].lower() == capability.lower() else " (not supported here: fell back)"
                largest = max(c[2] for c in record["comparisons"])
                print(f"ATEN_CPU_CAPABILITY={capability} ran {record['ran']}{fallback}, {count} thread(s), "
                      f"BLAS {blas}: {record['seconds']} s, largest deviation {largest:.4g}", flush=True)
    table = spread(records)
    print(f"\n{'family':<14} {'largest':>9} {'tolerance':>9}  where")
    for family in sorted(table, key=FAMILIES.index):
        entry = table[family]
        print(f"{family:<14} {entry['deviation']:>9.4g} {entry['tolerance']:>9.4g}  {entry['metric']} "
              f"({entry['stored']} committed, {entry['retrained']} retrained; {entry['configuration']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
