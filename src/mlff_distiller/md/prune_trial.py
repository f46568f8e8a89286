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
where pruning ran at 0.93-0.97x. :class:`PruneTrial` times both instead, in alternating
blocks so that a machine that speeds up or slows down meanwhile favours neither, and keeps
the faster one.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

TRIAL_STEPS = 12  # timed steps of each kind before the choice
TRIAL_BLOCK = 4  # steps of one kind in a row; the first of each block is not timed


class PruneTrial:
    """Times MD steps with the margin list and pruned ones, alternating, and picks the faster.

    Once :meth:`start` ed, :meth:`next_kind` hands out the kind of each step: blocks of
    ``block`` margin steps and ``block`` pruned steps in turn. A step's time runs from its
    start to the next step's start, so the integrator's and ASE's own per-step work count.
    Not timed: the first step of each block (the switch costs it a step without the
    program's prediction), steps that drew a pair list, and the step before each ``run``'s
    first (the interval holds whatever the caller did in between).

    Args:
        steps: timed steps of each kind before the choice (>= 1).
        block: steps of one kind in a row (>= 2).
        clock: seconds, monotonic (``time.perf_counter``).
    """

    def __init__(self, steps: int = TRIAL_STEPS, block: int = TRIAL_BLOCK,
                 clock: Callable[[], float] = time.perf_counter) -> None:
        self.steps = steps
        self.block = block
        self.clock = clock
        self.times: dict[bool, list[float]] = {False: [], True: []}  # s per step, by pruned
        self.started = False
        self.chosen: bool | None = None  # True: prune from now on, False: keep the margin list
        self._handed_out = 0  # kinds handed out since the start
        # the step under way: start time, pruned, list draws at its start, first of its block
        self._last: tuple[float, bool, int, bool] | None = None

    def start(self) -> None:
        """Begin handing out kinds (from a margin block)."""
        self.started = True

    def next_kind(self) -> bool:
        """The kind of the step about to start (True: pruned), once started."""
        kind = (self._handed_out // self.block) % 2 == 1
        self._handed_out += 1
        return kind

    def step_started(self, pruned: bool, draws: int, first_of_run: bool) -> None:
        """Note the start of a step (once started): ``pruned`` is the kind of step it takes,
        ``draws`` the integrator's count of lists drawn so far. Times the step that just
        ended."""
        if not self.started:
            return
        now = self.clock()
        last = self._last
        if last is not None and not first_of_run and last[2] == draws and not last[3]:
            self.times[last[1]].append(now - last[0])
        self._last = (now, pruned, draws, last is None or last[1] != pruned)

    def choose(self) -> bool | None:
        """Once both kinds have ``steps`` timed steps, the choice (True: pruning is faster;
        a tie keeps the margin list, which also lets the compiled program take steps
        ahead); None before."""
        if self.chosen is None and min(len(t) for t in self.times.values()) >= self.steps:
            self.chosen = bool(statistics.median(self.times[True])
                               < statistics.median(self.times[False]))
        return self.chosen

    def medians_us(self) -> dict[str, float | None]:
        """Median µs per timed step of each kind (None: none timed): what the choice saw."""
        return {("prune_us" if kind else "margin_us"):
                (round(1e6 * statistics.median(times), 1) if times else None)
                for kind, times in self.times.items()}


__all__ = ["TRIAL_BLOCK", "TRIAL_STEPS", "PruneTrial"]
