"""Spawned writer processes for the concurrency tests (test_lakehouse, test_s3).

Plain processes, not a multiprocessing Pool: on 2026-12-08 a spawn Pool's terminate hung in
every one of these tests (``pool.map`` had returned; ``Pool.__exit__`` then waited for ever on
a worker left blocked on the task queue's lock), and a join that never returns stops the whole
suite. Spawn, not fork: a forked child near deltalake panics.
"""

from __future__ import annotations

import multiprocessing as mp


def _child(fn, n: int, args: tuple, barrier, results) -> None:
    results.put((n, fn(args + (barrier,))))


def run_spawned(fn, arg_list: list[tuple], timeout_s: float = 300.0) -> list:
    """``fn(args + (barrier,))`` in one spawned process per ``args``, all sharing one Barrier
    (so they start, or race, together); their results in ``arg_list``'s order. A process that
    hangs past ``timeout_s`` is killed and fails the test, as does one that crashes."""
    ctx = mp.get_context("spawn")
    with ctx.Manager() as manager:
        barrier, results = manager.Barrier(len(arg_list)), manager.Queue()
        procs = [ctx.Process(target=_child, args=(fn, n, args, barrier, results)) for n, args in enumerate(arg_list)]
        for proc in procs:
            proc.start()
        for proc in procs:
            proc.join(timeout=timeout_s)
        hung = [proc for proc in procs if proc.is_alive()]
        for proc in hung:
            proc.kill()
        hung = [proc.pid for proc in hung]
        assert not hung, f"writer processes {hung} did not finish in {timeout_s:.0f} s"
        assert [proc.exitcode for proc in procs] == [0] * len(procs), "a writer process crashed"
        out = dict(results.get(timeout=10) for _ in procs)
        return [out[n] for n in range(len(procs))]
