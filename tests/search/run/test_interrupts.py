from __future__ import annotations

import signal

import optuna
import pytest

from search.run.budget import fail_silent_trials
from search.run.interrupts import Interrupts
from search.storage import open_storage


def test_signal_during_a_held_section_is_raised_when_it_ends() -> None:
    interrupts = Interrupts()
    interrupts.hold()
    interrupts._handle(signal.SIGINT, None)  # held back: no exception here
    with pytest.raises(KeyboardInterrupt):
        interrupts.release()
    assert interrupts.stopping and interrupts.held == 0


def test_signal_outside_held_sections_is_raised_at_once_and_later_ones_ignored() -> None:
    interrupts = Interrupts()
    with pytest.raises(KeyboardInterrupt):
        interrupts._handle(signal.SIGTERM, None)
    interrupts._handle(signal.SIGINT, None)  # the cleanup of the first is not cut short
    with interrupts.held_section():
        pass


def test_nested_sections_raise_only_when_the_outermost_ends() -> None:
    interrupts = Interrupts()
    with pytest.raises(KeyboardInterrupt), interrupts.held_section():
        with interrupts.held_section():
            interrupts._handle(signal.SIGINT, None)
        assert interrupts.pending  # still held by the outer section


def test_the_first_signal_is_said_at_once_held_or_not_and_only_once() -> None:
    said: list[str] = []
    interrupts = Interrupts(on_stop=lambda: said.append("stopping"))
    interrupts.hold()
    interrupts._handle(signal.SIGINT, None)  # held back, yet said now: the closing may take many seconds
    assert said == ["stopping"]
    interrupts._handle(signal.SIGINT, None)
    with pytest.raises(KeyboardInterrupt):
        interrupts.release()
    interrupts._handle(signal.SIGINT, None)
    assert said == ["stopping"]


def test_trial_that_never_sent_a_heartbeat_is_failed_and_queued_again(sqlite_url: str) -> None:
    storage = open_storage(sqlite_url, heartbeat=60)
    study = optuna.create_study(storage=storage, direction="maximize")
    study.enqueue_trial({"x": 1.0})
    trial = study.ask()  # RUNNING, and its worker "died" before its first heartbeat
    trial.suggest_float("x", 0, 2)
    fail_silent_trials(storage, study, grace_seconds=3600)
    assert study.trials[0].state.name == "RUNNING"  # not silent for long enough yet
    fail_silent_trials(storage, study, grace_seconds=0)
    states = [t.state.name for t in study.trials]
    assert states == ["FAIL", "WAITING"]
    assert study.trials[1].params == {"x": 1.0}
