"""PruneTrial: which kind of MD step (margin list or pruned) is faster, timed."""

from __future__ import annotations

from mlff_distiller.md.prune_trial import PruneTrial


def _run(trial: PruneTrial, steps: list[tuple[float, float, int, bool]]) -> None:
    """Feed ``trial`` steps of (seconds if margin, seconds if pruned, draws at the step's
    start, first of a run), each of the kind the trial hands out."""
    now = [0.0]
    trial.clock = lambda: now[0]
    for margin_s, pruned_s, draws, first in steps:
        pruned = trial.next_kind()
        trial.step_started(pruned, draws, first)
        now[0] += pruned_s if pruned else margin_s


def test_kinds_alternate_in_blocks_from_a_margin_block():
    trial = PruneTrial(block=3)
    trial.start()
    assert [trial.next_kind() for _ in range(8)] == [False] * 3 + [True] * 3 + [False] * 2


def test_steps_are_timed_start_to_start_except_each_blocks_first():
    trial = PruneTrial(block=3)
    trial.start()
    _run(trial, [(1.0, 2.0, 0, False)] * 7)
    # steps 1-3 margin, 4-6 pruned, 7 margin (its time not known yet): the first of each
    # block is not timed
    assert trial.times == {False: [1.0, 1.0], True: [2.0, 2.0]}


def test_steps_that_drew_a_list_and_gaps_between_runs_are_not_timed():
    trial = PruneTrial(block=6)
    trial.start()
    # the third step drew a list (the count moved on by the fourth's start); the fifth
    # starts a new run, so the interval before it (the fourth step and whatever the caller
    # did before the next run) is not a step's time either; the first is its block's first
    _run(trial, [(1.0, 0, 0, True), (1.5, 0, 0, False), (9.0, 0, 0, False),
                 (7.0, 0, 1, False), (1.25, 0, 1, True), (5.0, 0, 1, False)])
    assert trial.times[False] == [1.5, 1.25]


def test_nothing_is_timed_before_the_start():
    trial = PruneTrial(block=2)
    _run(trial, [(1.0, 2.0, 0, False)] * 5)
    assert trial.times == {False: [], True: []} and trial.choose() is None


def test_the_faster_median_wins_and_a_tie_keeps_the_margin_list():
    for pruned_s, chosen in ((0.9, True), (1.1, False), (1.0, False)):
        trial = PruneTrial(steps=3, block=4)
        trial.start()
        # margin steps 1-4 (2-4 timed), pruned 5-8 (6-8 timed, 8 once the ninth starts)
        _run(trial, [(1.0, pruned_s, 0, False)] * 8)
        assert trial.choose() is None
        _run(trial, [(1.0, pruned_s, 0, False)])
        assert trial.choose() is chosen
        assert trial.medians_us()["margin_us"] == 1e6


def test_a_hiccup_does_not_decide():
    trial = PruneTrial(steps=3, block=4)
    trial.start()
    # one margin step held up 50 times over (the machine, a trajectory write): medians
    _run(trial, [(1.0, 1.2, 0, False), (1.0, 1.2, 0, False), (50.0, 1.2, 0, False),
                 (1.0, 1.2, 0, False)] + [(1.0, 1.2, 0, False)] * 5)
    assert trial.choose() is False
