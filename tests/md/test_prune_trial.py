"""PruneTrial: which kind of MD step (margin list or pruned) is faster, timed."""

from __future__ import annotations

from mlff_distiller.md.prune_trial import PruneTrial


def _trial(durations: list[tuple[bool, float, int, bool]], steps: int = 3) -> PruneTrial:
    """A trial fed steps of (pruned, seconds, draws at its start, first of a run)."""
    now = [0.0]
    trial = PruneTrial(steps=steps, clock=lambda: now[0])
    for pruned, seconds, draws, first in durations:
        trial.step_started(pruned, draws, first)
        now[0] += seconds
    return trial


def test_each_step_is_timed_start_to_start_by_its_kind():
    trial = _trial([(False, 1.0, 0, True), (False, 2.0, 0, False), (True, 3.0, 0, False),
                    (True, 4.0, 0, False)])
    # the last step has not ended: its time is unknown
    assert trial.times == {False: [1.0, 2.0], True: [3.0]}


def test_steps_that_drew_a_list_and_gaps_between_runs_are_not_timed():
    # the second step drew a list (the count moved on by the third's start); the fourth
    # starts a new run, so the interval before it (the third step and whatever the caller
    # did before the next run) is not a step's time either
    trial = _trial([(False, 1.0, 0, True), (False, 9.0, 0, False), (False, 7.0, 1, False),
                    (False, 1.25, 1, True), (False, 1.0, 1, False)])
    assert trial.times[False] == [1.0, 1.25]


def test_pruned_steps_start_only_after_enough_margin_steps():
    trial = _trial([(False, 1.0, 0, False)] * 3)
    assert not trial.may_start_pruning()  # two timed so far
    trial.step_started(False, 0, False)
    assert trial.may_start_pruning()
    trial.pruning = True
    assert not trial.may_start_pruning()  # under way


def test_the_faster_median_wins_and_a_tie_keeps_the_margin_list():
    margin = [(False, t, 0, False) for t in (1.0, 1.0, 5.0)]  # median 1.0 (5.0: a hiccup)
    for pruned_seconds, chosen in ((0.9, True), (1.1, False), (1.0, False)):
        trial = _trial(margin + [(False, 1.0, 0, False)])
        trial.pruning = True
        now = [trial.clock()]
        trial.clock = lambda now=now: now[0]
        for _ in range(3):
            trial.step_started(True, 0, False)
            assert trial.choose() is None  # not enough pruned steps timed yet
            now[0] += pruned_seconds
        trial.step_started(True, 0, False)
        assert trial.choose() is chosen and not trial.pruning
        assert trial.medians_us()["margin_us"] == 1e6


def test_no_choice_without_a_trial_of_pruned_steps():
    trial = _trial([(False, 1.0, 0, False)] * 10)
    assert trial.choose() is None and trial.medians_us()["prune_us"] is None
