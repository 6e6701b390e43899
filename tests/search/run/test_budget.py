from __future__ import annotations

from search.run.budget import Counts, Verdict, claim
from search.run.plan import WORKER_MEMORY_BYTES, default_workers, plan_workers
from search.spec import StudySpec


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


def test_workers_are_capped_at_the_trials_left_and_memory_is_warned_about() -> None:
    assert plan_workers(4, 10, None) == (4, None)
    assert plan_workers(1000, 3, None) == (3, "note: 1000 workers asked, 3 trial(s) left: starting 3")
    assert plan_workers(5, 0, None)[0] == 1  # one worker still ends the study cleanly
    workers, note = plan_workers(8, 100, 4 * WORKER_MEMORY_BYTES)
    assert workers == 8 and note is not None and "8 workers need about 8.6 GB, 4.3 GB is available" in note
    assert plan_workers(2, 100, 4 * WORKER_MEMORY_BYTES) == (2, None)


def test_default_workers_one_per_core_while_there_are_networks() -> None:
    assert default_workers(None, 8) == 1  # a sampler's study
    assert default_workers(StudySpec("oat", max_epochs=2).networks(), 2) == 2
    assert default_workers(3, 16) == 3  # no more workers than networks to split a group into
    assert StudySpec("random").networks() is None
