"""Helpers shared by the benchmark scripts in this folder (each script runs as
`python3 bench/<name>.py`, so this folder is on sys.path)."""

import time


def best_time_and_result(fn, reps, min_seconds=0.0):
    """The fastest of `reps` timed calls of fn, in seconds, and the result of
    the untimed warm-up call (so a benchmark can check the peers agree).

    The best, not the mean: on a shared machine the minimum is the reading
    least disturbed by other work, and ratios between peers timed the same
    way in one run are what the benchmarks report. With min_seconds, calls
    shorter than that repeat until their time adds up to it (at most 200):
    three calls of a few milliseconds can all fall inside one stretch when
    another process (or the kernel) holds a core.
    """
    t0 = time.perf_counter()
    result = fn()  # warm-up: caches, lazy initialisation, page faults
    first = time.perf_counter() - t0
    if min_seconds > 0:
        reps = max(reps, min(200, int(min_seconds / max(first, 1e-9))))
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best, result


def best_time(fn, reps, min_seconds=0.0):
    """The fastest of `reps` timed calls of fn, in seconds, after one untimed
    warm-up call (see best_time_and_result)."""
    return best_time_and_result(fn, reps, min_seconds)[0]
