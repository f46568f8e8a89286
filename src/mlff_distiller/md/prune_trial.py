"""Whether a student's MD steps should prune their pair list every step: timed, not guessed.

A margin pair list (:mod:`mlff_distiller.md.verlet`) holds pairs a little beyond the cutoff,
so it can be reused for many steps; the student then spends time on pairs that contribute
exactly zero. Pruning the list to the pairs within the cutoff every step removes that work
but costs a distance pass in numpy per step and the compiled program's step-ahead path.
Which is faster depends on the student, the molecule and the machine: with the students
that ``make demo`` trains, on 1 thread, pruned steps ran at 0.82-0.87x the speed of margin
steps for ``tiny`` at 20 atoms and at 1.02-1.03x for ``original`` at 40
(``benchmarks/md_pair_pruning.py``, session 23). An estimate from the share of extra pairs
times the student's time per step (the rule before session 25) put ``tiny`` at 40 atoms
on either side of its limit depending on how fast the machine was running at the time,
where pruning ran at 0.93-0.97x. :class:`PruneTrial` times both instead and keeps the
faster one.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

# timed steps of each kind before the choice: medians of 16 steps, and a trial that costs
# at most 16 steps of the slower kind once per run of an integrator
TRIAL_STEPS = 16


class PruneTrial:
    """Times whole MD steps with the margin list and then pruned, and picks the faster.

    A step's time runs from its start to the next step's start, so the integrator's and
    ASE's own per-step work count. Steps that drew a pair list, and the first step of each
    ``run`` (whose interval holds whatever the caller did in between), are not timed.

    Args:
        steps: timed steps of each kind before the choice (>= 1).
        clock: seconds, monotonic (``time.perf_counter``).
    """

    def __init__(self, steps: int = TRIAL_STEPS,
                 clock: Callable[[], float] = time.perf_counter) -> None:
        self.steps = steps
        self.clock = clock
        self.times: dict[bool, list[float]] = {False: [], True: []}  # s per step, by pruned
        self.pruning = False  # the trial's pruned steps are under way
        self.chosen: bool | None = None  # True: prune from now on, False: keep the margin list
        self._last: tuple[float, bool, int] | None = None  # start, pruned, draws at start

    def step_started(self, pruned: bool, draws: int, first_of_run: bool) -> None:
        """Note the start of a step: ``pruned`` is the kind of step it takes, ``draws`` the
        integrator's count of lists drawn so far. Times the step that just ended."""
        now = self.clock()
        last = self._last
        if last is not None and not first_of_run and last[2] == draws:
            self.times[last[1]].append(now - last[0])
        self._last = (now, pruned, draws)

    def may_start_pruning(self) -> bool:
        """True when enough margin-list steps were timed to start the pruned ones."""
        return self.chosen is None and not self.pruning and len(self.times[False]) >= self.steps

    def choose(self) -> bool | None:
        """After enough pruned steps, the choice (True: pruning is faster; ties keep the
        margin list, which also lets the compiled program take steps ahead); None before."""
        if self.chosen is None and self.pruning and len(self.times[True]) >= self.steps:
            self.pruning = False
            self.chosen = bool(statistics.median(self.times[True])
                               < statistics.median(self.times[False]))
        return self.chosen

    def medians_us(self) -> dict[str, float | None]:
        """Median µs per timed step of each kind (None: none timed): what the choice saw."""
        return {("prune_us" if kind else "margin_us"):
                (round(1e6 * statistics.median(times), 1) if times else None)
                for kind, times in self.times.items()}


__all__ = ["TRIAL_STEPS", "PruneTrial"]
