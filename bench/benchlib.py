"""Helpers shared by the benchmark scripts in this folder (each script runs as
`python3 bench/<name>.py`, so this folder is on sys.path)."""

import time


def best_time_and_result(fn, reps):
    """The fastest of `reps` timed calls of fn, in seconds, and the result of
    the untimed warm-up call (so a benchmark can check the peers agree).

    The best, not the mean: on a shared machine the minimum is the reading
    least disturbed by other work, and ratios between peers timed the same
    way in one run are what the benchmarks report.
    """
    result = fn()  # warm-up: caches, lazy initialisation, page faults
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best, result


def best_time(fn, reps):
    """The fastest of `reps` timed calls of fn, in seconds, after one untimed
    warm-up call (see best_time_and_result)."""
    return best_time_and_result(fn, reps)[0]
