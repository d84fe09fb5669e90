"""Several runs at once (``run --jobs N|auto``): worker processes share one sweep, the parent shows its progress.

The parent hands out run indices one at a time to ``N`` spawned workers; each worker claims, trains, evaluates
and stores a run exactly as a single-process sweep does (the same per-run file-lock claims that concurrent
sweeps share), then reports to the parent and asks for the next one. Each worker talks to the parent over its
own pipe, not one shared queue, so a worker killed in the middle of a message cannot leave a lock held that
stalls the others.

* **Threads and devices** are resolved by :mod:`pmrl_bench.runner.jobs`: every run uses the same thread count in
  a worker or not, and worker ``i`` takes GPU ``i mod count`` when several are visible.
* **Reporters** (``run --log``): each worker opens its own from the pickled factory it is handed and closes them
  when it leaves, so every run's curves are written whatever ``--jobs`` is.
* **Stopping.** Ctrl-C, SIGTERM or SIGHUP reach the parent, which stops every worker (SIGTERM: each abandons
  its run, which is not saved) and says in one line what finished. Workers ignore the terminal's SIGINT and
  SIGHUP; the parent decides.
* **A worker killed** (``kill -9``, the OOM killer) loses only its current run: the kernel frees its claim, the
  other workers carry on, and the run is reported as lost and trained by the next invocation.
"""

from __future__ import annotations

import multiprocessing
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from multiprocessing.connection import Connection, wait
from multiprocessing.reduction import ForkingPickler
from typing import Any

import torch
from tqdm.auto import tqdm

from pmrl_bench.console import progress_label, say
from pmrl_bench.errors import Interrupted, PmrlBenchError, UsageError
from pmrl_bench.registry import Registry
from pmrl_bench.results import ResultStore
from pmrl_bench.runner.executor import MonitorFactory, RunExecutor, RunReporters
from pmrl_bench.runner.interrupt import stop_signals_interrupt, terminal_signals_ignored
from pmrl_bench.runner.jobs import run_threads, seed_groups, worker_device
from pmrl_bench.runner.summary import SweepSummary, interrupted_message
from pmrl_bench.runner.sweep_plan import SweepConfig, SweepPlan

STOP_TIMEOUT_S = 30.0  # how long stopped workers get to unwind before they are killed


# -- a worker ------------------------------------------------------------------------------------------------------

@dataclass
class _Payload:
    plan: SweepPlan
    config: SweepConfig
    registry: Registry
    store: ResultStore
    versions: dict[str, Any]
    monitor_factory: MonitorFactory
    reporters: Callable[[], RunReporters] | None  # opened in the worker, closed when it leaves
    started: float  # the sweep's start: a result a sibling wrote after it counts as done, even with --rerun
    announced: list[str]  # runs the parent already announced it retrains (on changed data)


def _worker_main(worker: int, conn: Connection, device: str, threads: int) -> None:
    """A worker: read the sweep, then ask for a run, attempt it, report, until the parent says nothing is left."""
    # Workers draw no progress bars; a thread lock keeps tqdm from creating a multiprocessing semaphore, which a
    # worker killed with SIGKILL would leave behind (and the resource tracker would warn about).
    tqdm.set_lock(threading.RLock())
    reporters = None
    try:
        with run_threads(threads), stop_signals_interrupt():  # SIGTERM from the parent unwinds like Ctrl-C
            payload: _Payload = ForkingPickler.loads(conn.recv_bytes())  # from our own parent only
            reporters = payload.reporters() if payload.reporters is not None else None
            executor = RunExecutor(payload.plan, payload.config, payload.registry, payload.store, payload.versions,
                                   payload.monitor_factory, torch.device(device), reporters=reporters,
                                   started=payload.started, announced=payload.announced)
            _serve(conn, executor, payload.plan)
    except KeyboardInterrupt:  # stopped by the parent: the run in progress is abandoned, nothing partial is kept
        sys.exit(1)
    except PmrlBenchError as exc:  # e.g. the results disk is full: the whole sweep must stop
        _send_quietly(conn, ("error", exc))
        sys.exit(1)
    except (BrokenPipeError, EOFError):  # the parent is gone
        sys.exit(1)
    finally:
        if reporters is not None:
            reporters.close()


def _serve(conn: Connection, executor: RunExecutor, plan: SweepPlan) -> None:
    """Attempt each group of run indices the parent sends (the seeds of one configuration, ``--seed-batch``);
    runs another invocation holds are waited for at the end, one by one."""
    deferred: list[int] = []
    conn.send(("ready", None))
    while (group := conn.recv()) is not None:
        reports, held = executor.attempt_seeds([plan.specs[i] for i in group], wait=False)
        held_ids = {spec.run_id for spec in held}
        waiting = [i for i in group if plan.specs[i].run_id in held_ids]  # another invocation is training them
        deferred += waiting
        conn.send(("done", ([i for i in group if i not in waiting], reports)))
    for index in deferred:
        conn.send(("start", [index]))
        report = executor.attempt(plan.specs[index], wait=True)
        conn.send(("done", ([index], [report])))
    conn.send(("bye", None))


def _send_quietly(conn: Connection, message: Any) -> None:
    try:
        conn.send(message)
    except Exception:  # noqa: BLE001 - the parent is gone, or the error does not pickle: the exit status tells
        pass


# -- the parent ----------------------------------------------------------------------------------------------------

@dataclass
class _Worker:
    number: int
    process: Any
    conn: Connection
    running: list[int] | None = None  # the run indices it is attempting (the seeds of one configuration)
    handed_all: bool = False  # told there is nothing more: it now finishes the runs it deferred, then leaves
    finished: bool = False


def execute_parallel(
    plan: SweepPlan, config: SweepConfig, registry: Registry, store: ResultStore, versions: dict[str, Any],
    monitor_factory: MonitorFactory, device: torch.device, jobs: int,
    reporters: Callable[[], RunReporters] | None = None,
) -> SweepSummary:
    """Run ``plan`` in up to ``jobs`` worker processes; return the sweep's :class:`SweepSummary`.

    Runs already done are counted here, in the parent, and never handed out, so a finished sweep starts no worker.
    """
    parent = RunExecutor(plan, config, registry, store, versions, monitor_factory, device)
    summary = SweepSummary(planned=len(plan.specs))
    workers: list[_Worker] = []
    bar = tqdm(total=len(plan.specs), desc="sweep", unit="run", disable=not config.progress or None)
    try:
        with stop_signals_interrupt():
            try:
                todo = []
                for index, spec in enumerate(plan.specs):
                    report = parent.done(spec)
                    if report is None:
                        todo.append(index)
                    else:
                        summary.add(report)
                summary.retrained.extend(parent.announced)
                bar.update(len(plan.specs) - len(todo))
                payload = _Payload(plan, replace(config, progress=False), registry, store, versions, monitor_factory,
                                   reporters, parent.started, list(parent.announced))
                groups = [[todo[i] for i in group]
                          for group in seed_groups([plan.specs[i].config_id for i in todo], config.seed_batch)]
                _start_workers(payload, device, min(jobs, len(groups)), config.threads, workers)
                _dispatch(workers, plan, groups, summary, bar)
            except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM/SIGHUP via stop_signals_interrupt
                signum = getattr(exc, "signum", signal.SIGINT)
                running = [plan.specs[i].run_id for w in workers for i in (w.running or [])]
                _stop(workers)
                raise Interrupted(signum, interrupted_message(signum, summary, running, store.root)) from None
    finally:
        bar.close()
        _stop(workers)
    return summary


def _start_workers(payload: _Payload, device: torch.device, count: int, threads: int, workers: list[_Worker]) -> None:
    """Spawn ``count`` workers into ``workers`` (filled as they start, so an interrupt can stop them), then send
    each the pickled sweep over its own pipe.

    The sweep (its task data included) goes over the worker's pipe rather than as a ``Process`` argument: the
    argument travels through a pipe whose read end the parent keeps open while writing, so a child that died
    while starting would block the parent for ever; ours reports a dead reader at once.
    """
    try:  # what multiprocessing itself uses for a child's arguments; pickled once for every worker
        blob = ForkingPickler.dumps(payload)
    except Exception as exc:  # noqa: BLE001 - whatever pickling raises, the sweep cannot reach a worker
        raise UsageError(f"--jobs needs components that worker processes can import, but {exc}; register them "
                         "from an importable module, or run with --jobs 1") from None
    context = multiprocessing.get_context("spawn")  # fork would copy torch's thread pools and CUDA state
    # Workers start with SIGINT and SIGHUP ignored, so the terminal's Ctrl-C or hang-up reaches only the parent,
    # which then stops them in order.
    with terminal_signals_ignored():
        for number in range(count):
            parent_end, child_end = context.Pipe()
            process = context.Process(target=_worker_main, args=(number, child_end, str(worker_device(device, number)),
                                                                 threads),
                                      name=f"pmrl-bench-worker-{number}", daemon=True)
            process.start()
            child_end.close()
            workers.append(_Worker(number, process, parent_end))
    for worker in workers:  # they start up in parallel; each takes its copy once it is ready
        try:
            worker.conn.send_bytes(blob)
        except OSError:  # it died starting up: its sentinel reports it
            pass



def _dispatch(workers: list[_Worker], plan: SweepPlan, todo: list[list[int]], summary: SweepSummary,
              bar: Any) -> None:
    """Hand out the groups ``todo`` until every worker has said goodbye or died; fold their reports into
    ``summary``."""
    queue = list(reversed(todo))
    pending = {i for group in todo for i in group}  # not reported done yet
    live = {w.conn: w for w in workers}
    sentinels = {w.process.sentinel: w for w in workers}
    while live or sentinels:
        for ready in wait([*live, *sentinels]):
            if ready in sentinels:  # a worker process ended
                worker = sentinels.pop(ready)
                if worker.conn in live:
                    pending -= _drain(worker, summary, bar)
                    del live[worker.conn]
                if not worker.finished:
                    _lost(worker, plan, summary)
                continue
            worker = live.get(ready)
            if worker is None:
                continue
            try:
                kind, body = worker.conn.recv()
            except (EOFError, OSError):  # it died: its sentinel tells the rest
                del live[ready]
                continue
            if kind == "done":
                pending.difference_update(body[0])
            if _handle(worker, kind, body, summary, bar) and not worker.handed_all:
                if queue:
                    worker.running = queue.pop()  # its own from now on, even if it dies before it says "start"
                    worker.conn.send(worker.running)
                else:
                    worker.conn.send(None)
                    worker.handed_all = True
            if kind == "bye":
                worker.finished = True
                del live[ready]
        bar.set_postfix_str(", ".join(progress_label(plan.specs[i].run_id) for w in workers
                                      for i in (w.running or [])))
    # Every worker is gone. Runs still pending died with a worker, or were never handed out because all died.
    summary.lost.extend(plan.specs[i].run_id for i in sorted(pending) if plan.specs[i].run_id not in summary.lost)


def _drain(worker: _Worker, summary: SweepSummary, bar: Any) -> set[int]:
    """Read what a dead worker sent before it ended (its last report may still be in the pipe); the runs it
    reported done."""
    done = set()
    try:
        while worker.conn.poll():
            kind, body = worker.conn.recv()
            _handle(worker, kind, body, summary, bar)
            if kind == "done":
                done.update(body[0])
            worker.finished = worker.finished or kind == "bye"
    except (EOFError, OSError):
        pass
    return done


def _handle(worker: _Worker, kind: str, body: Any, summary: SweepSummary, bar: Any) -> bool:
    """Apply one message; True when the worker now waits for its next group of runs."""
    if kind == "start":
        worker.running = body
        return False
    if kind == "done":
        worker.running = None
        for report in body[1]:
            summary.add(report)
        bar.update(len(body[1]))
        return True
    if kind == "error":  # the worker cannot go on (e.g. results cannot be written): neither can the sweep
        raise body
    return kind == "ready"


def _lost(worker: _Worker, plan: SweepPlan, summary: SweepSummary) -> None:
    """A worker ended without saying goodbye: its current run is lost to this invocation."""
    worker.process.join(5)  # its sentinel fired: the exit status is moments away
    code = worker.process.exitcode
    how = f"killed by {signal.Signals(-code).name}" if code is not None and code < 0 else f"exit status {code}"
    where = "between runs"
    if worker.running:
        runs = ", ".join(plan.specs[i].run_id for i in worker.running)
        where = f"during {runs}, which the next 'run' trains"
        worker.running = None
    say(f"worker {worker.number} (pid {worker.process.pid}) died ({how}) {where}; the other workers go on")


def _stop(workers: list[_Worker]) -> None:
    """SIGTERM every live worker, give them ``STOP_TIMEOUT_S`` to unwind, then kill what is left."""
    for worker in workers:
        if worker.process.is_alive():
            worker.process.terminate()
    deadline = time.monotonic() + STOP_TIMEOUT_S
    for worker in workers:
        worker.process.join(max(0.0, deadline - time.monotonic()))
        if worker.process.is_alive():
            worker.process.kill()
            worker.process.join()
        worker.conn.close()
