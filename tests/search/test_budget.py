from __future__ import annotations

from search.budget import Counts, Verdict, claim


def test_free_slot_runs() -> None:
    assert claim(Counts(finished=2, running=1), budget=4) is Verdict.RUN


def test_budget_reached_is_done() -> None:
    assert claim(Counts(finished=4, running=0), budget=4) is Verdict.DONE


def test_running_trials_holding_the_last_slots_make_others_wait() -> None:
    """A running trial may still fail and give its slot back, so the others wait instead of leaving."""
    assert claim(Counts(finished=3, running=1), budget=4) is Verdict.WAIT


def test_failed_trials_do_not_count() -> None:
    assert claim(Counts(finished=3, failed=5), budget=4) is Verdict.RUN


def test_points_are_enqueued_only_when_none_waits_and_within_the_free_slots() -> None:
    calls = []

    def next_point(slots: int) -> bool:
        calls.append(slots)
        return True

    assert claim(Counts(waiting=1), budget=4, next_point=next_point) is Verdict.RUN
    assert calls == []
    assert claim(Counts(finished=1, running=1), budget=4, next_point=next_point) is Verdict.RUN
    assert calls == [2]


def test_points_exhausted_is_done_or_waits_for_running() -> None:
    assert claim(Counts(finished=1), budget=4, next_point=lambda slots: False) is Verdict.DONE
    assert claim(Counts(finished=1, running=1), budget=4, next_point=lambda slots: False) is Verdict.WAIT
