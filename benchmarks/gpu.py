"""Does the GPU pay? One command, a few minutes on a GPU machine, three figures with their targets.

    python benchmarks/gpu.py                                   # on a machine with a CUDA GPU
    python benchmarks/gpu.py --device cpu --seeds 1 --steps 30 # anywhere: checks that the script runs

1. **Default suite, GPU against this machine's CPU.** ``pmrl,infonce`` on the default tasks with the default
   budget, as ``pmrl-bench run`` would: on the CPU with ``--jobs auto`` (physical cores // 1 thread per run), on
   the device with ``--jobs 1`` and with ``--jobs 4`` (four runs sharing it); ``--also jobs8,fp32,compile`` adds
   ``--jobs 8``, and ``--jobs 4`` with ``--precision fp32`` and with ``--compile``; the device also with every
   seed of a configuration trained as one model (``--seed-batch auto``, with ``--jobs 1`` and ``--jobs 4``; run it
   with ``--seeds 10`` for the ten-seed suite). Target: the device at least 5x faster.
2. **Evaluation's share of a large-batch run on the device**: ``infonce`` on ``mfeat`` at batch 1024, the time in
   the evaluation of the final and of the starting state over the whole run, with the torch probes (the default)
   and, for comparison, scikit-learn's. Target: at most 10 %.
3. **Runner against a hand-written loop** on the device (``benchmarks/test_runner_throughput.py``'s loop: same
   encoders, data, batches and optimiser, in float32; the runner without monitors or evaluation, in float32 too,
   and at its default precision for comparison), median of 5 rounds each. Target: at most 1.05x the hand-written
   loop's time.
4. **Where the GPU pays**: one ``infonce`` run at 20 000 training instances, batch 1024 and dimension 256, on the
   device against the CPU with all its threads.

Clocks are read after synchronising the device. ``--json PATH`` also writes every figure to a file.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from pmrl_bench.plugins import get_registry
from pmrl_bench.results import ResultStore
from pmrl_bench.runner import train as train_module
from pmrl_bench.device import resolve_device, synchronize
from pmrl_bench.runner.jobs import resolve_jobs, run_threads
from pmrl_bench.runner.spec import Budget
from pmrl_bench.runner.executor import collect_versions
from pmrl_bench.runner.sweep import execute_sweep
from pmrl_bench.runner.sweep_plan import SweepConfig, plan_sweep
from pmrl_bench.stability import default_monitors

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_runner_throughput import hand_written_loop  # noqa: E402 - the same loop the pytest benchmark times

SUITE_OBJECTIVES = ["pmrl", "infonce"]


def sweep_seconds(device: str, jobs: int | str, args: argparse.Namespace, scratch: Path, precision: str = "auto",
                  compiled: bool = False, seed_batch: int | str = 1) -> tuple[float, int]:
    """Wall-clock seconds of one fresh sweep of the default suite on ``device``, and its number of workers."""
    registry = get_registry()
    config = SweepConfig(objectives=SUITE_OBJECTIVES, tasks=args.tasks or registry.default_tasks(), seeds=args.seeds,
                         budget=Budget(steps=args.steps), device=device, progress=False, jobs=jobs, threads=1,
                         precision=precision, compile=compiled, seed_batch=seed_batch)
    plan = plan_sweep(config, registry)
    workers = resolve_jobs(jobs, resolve_device(device), len(plan.specs), 1)
    store = ResultStore(Path(tempfile.mkdtemp(dir=scratch)))
    started = time.perf_counter()
    # each run synchronises its device
    summary = execute_sweep(plan, config, registry, store, collect_versions({}), default_monitors)
    elapsed = time.perf_counter() - started
    if not summary.all_ok:
        raise SystemExit(f"the sweep on {device} did not finish cleanly: {summary}")
    return elapsed, workers


def evaluation_share(device: torch.device, probe: str, args: argparse.Namespace) -> dict[str, float]:
    """Seconds of one large-batch ``mfeat`` run and of the evaluation inside it (both states)."""
    registry = get_registry()
    config = SweepConfig(objectives=["infonce"], tasks=["mfeat"], seeds=1, progress=False, device=str(device),
                         budget=Budget(steps=args.steps, batch_size=args.large_batch), probe=probe)
    plan = plan_sweep(config, registry)
    spec = plan.specs[0]
    spent = [0.0]
    real_evaluate = train_module.evaluate_trained  # both states, every view

    def timed_evaluate(*a: Any, **k: Any) -> Any:
        synchronize(device)
        started = time.perf_counter()
        out = real_evaluate(*a, **k)
        synchronize(device)
        spent[0] += time.perf_counter() - started
        return out

    train_module.evaluate_trained = timed_evaluate
    try:
        synchronize(device)
        started = time.perf_counter()
        outcome = train_module.train_and_evaluate(
            spec, plan.data["mfeat"], registry,
            train_module.TrainOptions(device=device, monitors=default_monitors(), progress=False))
        synchronize(device)
        total = time.perf_counter() - started
    finally:
        train_module.evaluate_trained = real_evaluate
    assert outcome.status == "ok", outcome.error
    return {"run_s": total, "evaluation_s": spent[0], "share": spent[0] / total}


def runner_vs_hand(device: torch.device, objective: str, rounds: int = 5) -> dict[str, float]:
    """Median seconds of the hand-written loop (float32) and of the runner's training loop (100 steps, batch 128),
    the runner in float32 as the hand-written loop (``runner_s``: what the runner itself costs) and at its default
    precision (``runner_default_s``: bfloat16 autocast on a GPU, which adds casts to every step)."""
    registry = get_registry()
    config = SweepConfig(objectives=[objective], tasks=["synthetic"], seeds=1, progress=False,
                         budget=Budget(steps=100, batch_size=128))
    plan = plan_sweep(config, registry)
    spec, data = plan.specs[0], plan.data["synthetic"]
    real_evaluate = train_module.evaluate_trained
    train_module.evaluate_trained = lambda *a, **k: ({}, {}, None)  # the training loop only, as in the pytest benchmark
    try:
        def runner(precision: str) -> Any:
            return train_module.train_and_evaluate(
                spec, data, registry,
                train_module.TrainOptions(device=device, probe_every=config.probe_every, progress=False,
                                          precision=precision))

        loops = {"hand": lambda: hand_written_loop(spec, data, registry, device),
                 "runner": lambda: runner("fp32"), "runner_default": lambda: runner("auto")}
        times: dict[str, list[float]] = {name: [] for name in loops}
        for _ in range(rounds + 1):  # the first round warms up (allocator, kernels)
            for name, loop in loops.items():
                synchronize(device)
                started = time.perf_counter()
                loop()
                synchronize(device)
                times[name].append(time.perf_counter() - started)
    finally:
        train_module.evaluate_trained = real_evaluate
    median = {name: statistics.median(seconds[1:]) for name, seconds in times.items()}
    return {"hand_s": median["hand"], "runner_s": median["runner"], "ratio": median["runner"] / median["hand"],
            "runner_default_s": median["runner_default"], "default_ratio": median["runner_default"] / median["hand"]}


def large_run_seconds(device: torch.device, args: argparse.Namespace) -> dict[str, float]:
    """Seconds of one ``infonce`` run on ``synthetic`` with 20 000 training instances at batch 1024 and dimension 256:
    a configuration where the arithmetic, not the launches, sets the pace."""
    registry = get_registry()
    config = SweepConfig(objectives=["infonce"], tasks=["synthetic"], seeds=1, progress=False, device=str(device),
                         budget=Budget(steps=args.steps, batch_size=1024, dim=256),
                         overrides={("task", "synthetic"): {"n_train": "20000"}})
    plan = plan_sweep(config, registry)
    synchronize(device)
    started = time.perf_counter()
    outcome = train_module.train_and_evaluate(
        plan.specs[0], plan.data["synthetic"], registry,
        train_module.TrainOptions(device=device, monitors=default_monitors(), progress=False))
    synchronize(device)
    assert outcome.status == "ok", outcome.error
    return {"run_s": time.perf_counter() - started, "ms_per_step": outcome.cost["ms_per_step"]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda", help="the device to measure (default cuda; cpu checks the script)")
    parser.add_argument("--seeds", type=int, default=3, help="seeds of the default-suite sweep (default 3)")
    parser.add_argument("--steps", type=int, default=300, help="steps of every run (default 300)")
    parser.add_argument("--tasks", type=lambda s: s.split(","),
                        help="tasks of the suite sweep (default: the default suite)")
    parser.add_argument("--large-batch", type=int, default=1024,
                        help="batch of the evaluation-share run (default 1024)")
    parser.add_argument("--also", type=lambda s: s.split(","), default=[], metavar="jobs8,fp32,compile",
                        help="also time the suite with --jobs 8, --jobs 4 --precision fp32, --jobs 4 --compile")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args(argv)
    device = resolve_device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"pmrl-bench GPU benchmark on {device} ({name}), torch {torch.__version__}, "
          f"{torch.get_num_threads()} CPU threads available to torch")
    figures: dict[str, Any] = {"device": str(device), "device_name": name, "torch": torch.__version__}

    def save() -> None:  # after every section, so a run cut short keeps what it measured
        if args.json:
            args.json.write_text(json.dumps(figures, indent=2) + "\n")

    with tempfile.TemporaryDirectory() as scratch:
        cpu_s, cpu_workers = sweep_seconds("cpu", "auto", args, Path(scratch))
        print(f"1. default suite ({'+'.join(SUITE_OBJECTIVES)}, {args.seeds} seeds, {args.steps} steps): "
              f"cpu --jobs auto ({cpu_workers} workers) {cpu_s:.1f} s")
        suite = {"cpu_s": cpu_s, "cpu_workers": cpu_workers}
        rows = [("jobs1", 1, "auto", False, 1), ("jobs4", 4, "auto", False, 1),
                ("jobs1_seed_batch", 1, "auto", False, "auto"), ("jobs4_seed_batch", 4, "auto", False, "auto")]
        rows += [("jobs8", 8, "auto", False, 1)] if "jobs8" in args.also else []
        rows += [("jobs4_fp32", 4, "fp32", False, 1)] if "fp32" in args.also else []
        rows += [("jobs4_compile", 4, "auto", True, 1)] if "compile" in args.also else []
        for key, jobs, precision, compiled, seed_batch in rows:
            device_s, _ = sweep_seconds(str(device), jobs, args, Path(scratch), precision, compiled, seed_batch)
            suite[f"device_{key}_s"] = device_s
            flags = f"--jobs {jobs}" + (f" --precision {precision}" if precision != "auto" else "")
            flags += " --compile" if compiled else ""
            flags += f" --seed-batch {seed_batch}" if seed_batch != 1 else ""
            print(f"   {device} {flags}: {device_s:.1f} s = {cpu_s / device_s:.2f}x the CPU (target >= 5x)")
        figures["default_suite"] = suite
        save()

    with run_threads(1):
        figures["evaluation_share"] = {}
        for probe in ("torch", "sklearn"):
            share = evaluation_share(device, probe, args)
            figures["evaluation_share"][probe] = share
            print(f"2. evaluation's share of a batch-{args.large_batch} mfeat run on {device}, {probe} probes: "
                  f"{share['evaluation_s']:.2f} s of {share['run_s']:.2f} s = {100 * share['share']:.1f} %"
                  f"{' (target <= 10 %)' if probe == 'torch' else ''}")
        save()
        figures["runner_vs_hand"] = {}
        for objective in ("infonce", "pmrl"):
            result = runner_vs_hand(device, objective)
            figures["runner_vs_hand"][objective] = result
            print(f"3. runner vs hand-written loop on {device}, {objective}, both float32: "
                  f"{result['runner_s'] * 1e3:.0f} ms vs {result['hand_s'] * 1e3:.0f} ms = {result['ratio']:.3f}x "
                  f"(target <= 1.05x); the runner at its "
                  f"default precision: {result['runner_default_s'] * 1e3:.0f} ms = {result['default_ratio']:.3f}x")
        save()
    large = {}
    for where in dict.fromkeys((device, torch.device("cpu"))):  # the CPU with all its threads, as one run uses it
        large[where.type] = large_run_seconds(where, args)
    figures["large_run"] = large
    print(f"4. one large run (synthetic, 20 000 instances, batch 1024, dim 256, {args.steps} steps): "
          f"{device} {large[device.type]['run_s']:.1f} s against cpu ({torch.get_num_threads()} threads) "
          f"{large['cpu']['run_s']:.1f} s = {large['cpu']['run_s'] / large[device.type]['run_s']:.1f}x")
    save()
    return 0


if __name__ == "__main__":
    sys.exit(main())
