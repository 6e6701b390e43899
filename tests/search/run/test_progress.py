"""Progress inside runs: workers report each epoch of their running group, the view shows it."""

from __future__ import annotations

import io
from collections.abc import Callable

import pytest

from search import app, records
from search.run import cost
from search.run.processes import run_workers
from search.run.progress import Event, Progress, format_epoch, format_seconds
from search.spec import StudySpec


def epoch(
    worker: int = 0, first: int = 0, trials: int = 3, run: int = 1, runs: int = 1, e: int = 1, resumed: int = 0
) -> Event:
    return {
        "resumed": resumed,
        "type": "epoch",
        "worker": worker,
        "first_trial": first,
        "trials": trials,
        "run": run,
        "runs": runs,
        "epoch": e,
        "epochs": 10,
        "images_per_second": 41_000.4,
        "fraction": (run - 1 + e / 10) / runs,
    }


def trial(number: int, worker: int = 0, state: str = "COMPLETE") -> Event:
    return {"type": "trial", "worker": worker, "number": number, "state": state, "value": 0.9, "params": {}}


def test_workers_report_each_epoch_of_their_group(make_spec: Callable[..., StudySpec]) -> None:
    spec = make_spec("oat", trials=3, seeds=2, max_epochs=3)
    app.prepare(spec)
    events: list[Event] = []
    run_workers(spec, events.append)
    starts = [e for e in events if e["type"] == "epoch" and e["epoch"] == 0]
    assert len(starts) == 1 and starts[0]["resumed"] == 0  # the run's start: the ETA's clock starts here
    epochs = [e for e in events if e["type"] == "epoch" and e["epoch"] > 0]
    # One group of three points (the first three oat points share the baseline's shape), both seeds in one run.
    assert {(e["first_trial"], e["trials"], e["runs"], e["epochs"]) for e in epochs} == {(0, 3, 1, 3)}
    assert [(e["run"], e["epoch"]) for e in epochs] == [(1, 1), (1, 2), (1, 3)]
    assert [e["fraction"] for e in epochs] == pytest.approx([1 / 3, 2 / 3, 1])
    assert all(e["images_per_second"] > 0 for e in epochs)
    assert [e["type"] for e in events[-3:]] == ["trial"] * 3  # told when all their seeds are done


def test_plain_lines_show_the_epoch_and_the_study_eta() -> None:
    out = io.StringIO()  # not a terminal: plain lines
    progress = Progress("grid", budget=6, stream=out)
    assert progress.eta() is None
    progress(epoch(e=5))
    assert "worker 0: epoch 5/10 of trials 0-2, 41,000 images/s, study ~" in out.getvalue()
    progress(epoch(e=6))  # an epoch's end is always said, however soon after the last line
    assert out.getvalue().count("epoch") == 2
    eta = progress.eta()
    assert eta is not None and eta > 0
    progress(trial(0))
    progress(trial(1, state="FAIL"))
    assert "[1/6] trial    0 complete val 0.9000" in out.getvalue()
    assert progress.running[0].told == 2 and progress.running[0].open_work == pytest.approx(0.6)


def test_format_epoch_and_seconds() -> None:
    assert format_epoch(epoch(trials=1, first=7, run=2, runs=3, e=7)) == (
        "epoch 7/10 (run 2/3) of trial 7, 41,000 images/s"
    )
    assert [format_seconds(s) for s in (4.6, 200, 7500)] == ["5s", "3m20s", "2h05m"]


def test_interrupted_points_are_requeued_and_counted_apart_from_failures(
    make_spec: Callable[..., StudySpec],
) -> None:
    """A Ctrl-C in the middle of a group (raised here from the progress callback, as a signal
    handler raises it between two steps) closes its trials and queues their points again."""
    spec = make_spec("oat", trials=2, seeds=2, max_epochs=2)
    study = app.prepare(spec)

    def interrupt(event: Event) -> None:
        if event["type"] == "epoch":
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_workers(spec, interrupt)
    counts = records.outcomes(study.get_trials())
    assert counts == records.Outcomes(waiting=2, requeued=2)
    assert {t.user_attrs["fail_reason"] for t in study.get_trials() if t.state.name == "FAIL"} == {"interrupted"}
    run_workers(spec, lambda event: None)
    assert records.outcomes(study.get_trials()).describe() == "2 finished, 2 interrupted and re-queued, 0 failed"


def test_eta_counts_this_runs_work_only_and_says_where_it_resumes(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [100.0]
    monkeypatch.setattr("search.run.progress.time.monotonic", lambda: now[0])
    out = io.StringIO()
    progress = Progress("grid", budget=3, stream=out)
    progress(epoch(e=6, resumed=6))  # a group of all three trials resumed at epoch 6 of 10
    assert "worker 0: resuming group of trials 0-2 from its checkpoint at epoch 6" in out.getvalue()
    assert progress.eta() is None  # nothing trained by this run yet
    now[0] += 10.0
    progress(epoch(e=7, resumed=6))  # 10 s for a tenth of the group: 30 s left for the other three tenths
    assert progress.eta() == pytest.approx(30.0)


def test_eta_moves_smoothly_from_its_countdown(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [0.0]
    monkeypatch.setattr("search.run.progress.time.monotonic", lambda: now[0])
    progress = Progress("grid", budget=1, stream=io.StringIO())
    progress(epoch(trials=1, e=0))
    now[0] = 10.0
    progress(epoch(trials=1, e=1))
    first = progress.eta()
    assert first == pytest.approx(90.0)
    now[0] = 20.0
    progress.running[0].fraction = 0.05  # an estimate far off the last one: 380 s
    assert progress.eta() == pytest.approx(80.0 + 0.3 * (380.0 - 80.0))


def group(e: int = 0, share: float = 0.0, first: int = 0, weights: int = 1_000) -> Event:
    """A grid group's report: 18 networks of 3 epochs on 1,000 images in batches of 25 (40 steps)."""
    event = {**epoch(first=first, trials=27, e=e), "epochs": 3, "share": share, "network_epochs": (3,) * 18}
    event.update({"shape": "1 x 64", "weights": weights, "batch_size": 25, "images": 1_000})
    event["fraction"] = (e + share) / 3
    return event


def test_a_group_is_said_as_it_starts_and_within_its_epochs(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [0.0]
    monkeypatch.setattr("search.run.progress.time.monotonic", lambda: now[0])
    out = io.StringIO()
    progress = Progress("grid", budget=27, stream=out, work=cost.run_units(group()))
    progress(group())
    assert out.getvalue() == "worker 0: training trials 0-26: 18 networks of 1 x 64, batch 25, 3 epochs\n"
    now[0] = 10.0
    progress(group(share=0.5))  # half the first epoch's steps: 20 of its 40 batches in 10 s, 50 s left
    assert out.getvalue().splitlines()[-1] == (
        "worker 0: epoch 1/3 of trials 0-26, batch 20/40, 18 networks, 738,007 network-images/s, study ~50s left"
    )
    now[0] = 15.0
    progress(group(e=1))  # the epoch's end, 5 s after the last line: said all the same
    assert (
        out.getvalue()
        .splitlines()[-1]
        .startswith("worker 0: epoch 1/3 of trials 0-26, 18 networks, 738,007 network-images/s, study ~")
    )
    now[0] = 18.0
    progress(group(e=1, share=0.1))  # within the next epoch, 3 s after the last line: on the bar only
    assert len(out.getvalue().splitlines()) == 3
    assert progress.epoch_text.startswith("epoch 2/3 of trials 0-26, batch 4/40")


def test_the_eta_weighs_each_group_by_its_cost(monkeypatch: pytest.MonkeyPatch) -> None:
    """A cheap group first, then one nine times dearer: the pace of the first, in cost, prices the second."""
    now = [0.0]
    monkeypatch.setattr("search.run.progress.time.monotonic", lambda: now[0])
    cheap, dear = group(weights=1_000), group(first=27, weights=9_000)
    progress = Progress("grid", budget=54, stream=io.StringIO(), work=cost.run_units(cheap) + cost.run_units(dear))
    progress(cheap)
    now[0] = 10.0
    progress(group(share=0.5, weights=1_000))  # a sixth of the cheap group in 10 s: all of it takes 60 s
    # Left: 5/6 of the cheap group (50 s) and the dear one (9 x 60 s). Counting trials would say 110 s:
    # 4.5 trials' worth in 10 s, 49.5 left.
    assert progress.eta() == pytest.approx(50.0 + 540.0)
    now[0] = 70.0
    progress(group(first=27, weights=9_000))  # the worker's next group: the cheap one is done
    assert progress.units_ended == progress.units_ended_here[0] == cost.run_units(cheap)


def test_stopping_says_at_once_how_many_trials_it_closes() -> None:
    out = io.StringIO()
    progress = Progress("grid", budget=6, stream=out)
    progress.stopping()
    progress(epoch(worker=0, trials=3, e=1))
    progress(epoch(worker=1, first=3, trials=3, e=1))
    progress(trial(0))
    progress.stopping()
    assert out.getvalue().splitlines()[0] == "stopping ..."
    assert out.getvalue().splitlines()[-1].startswith("stopping: closing 5 running trials, saving checkpoints ...")


def test_start_up_stages_are_said_per_worker() -> None:
    out = io.StringIO()
    progress = Progress("grid", budget=6, stream=out)
    progress({"type": "status", "text": "starting 2 worker processes"})
    progress({"type": "status", "worker": 1, "text": "loading the data"})
    assert out.getvalue().splitlines() == ["starting 2 worker processes", "worker 1: loading the data"]


def test_workers_that_start_apart_each_add_their_own_pace(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [0.0]
    monkeypatch.setattr("search.run.progress.time.monotonic", lambda: now[0])
    units = cost.run_units(group())
    progress = Progress("grid", budget=108, stream=io.StringIO(), work=4 * units)
    progress(group())
    now[0] = 20.0
    progress({**group(first=27), "worker": 1})  # the second worker's start took 20 s longer
    now[0] = 30.0
    progress(group(share=0.5))  # a sixth of a group in 30 s
    progress({**group(first=27, share=0.5), "worker": 1})  # a sixth in 10 s
    progress._shown = None  # the estimate itself, not smoothed
    # 1/180 + 1/60 of a group a second; 4 - 1/3 groups left. Over the 30 s since the first start: 330 s.
    assert progress.eta() == pytest.approx((4 - 1 / 3) / (1 / 180 + 1 / 60))


def test_workers_report_progress_within_an_epoch(
    make_spec: Callable[..., StudySpec], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Told after every step here (a real run: every 10 s), with what the run costs."""
    monkeypatch.setattr("trainer.objective.PROGRESS_SECONDS", 0.0)
    monkeypatch.setattr("trainer.steps.PROGRESS_STEPS", 1)
    spec = make_spec("oat", trials=3, max_epochs=2)
    app.prepare(spec)
    events: list[Event] = []
    run_workers(spec, events.append)
    reports = [e for e in events if e["type"] == "epoch"]
    within = [e for e in reports if e["share"]]
    assert {e["epoch"] for e in within} == {0, 1} and all(0 < e["share"] <= 1 for e in within)
    assert [e["fraction"] for e in reports] == sorted(e["fraction"] for e in reports)
    first = reports[0]
    assert (first["shape"], first["batch_size"], first["images"], first["weights"]) == ("1 x 128", 64, 200, 101_770)
    assert first["network_epochs"] and set(first["network_epochs"]) == {2}


def test_a_run_says_what_it_did_apart_from_the_study(
    make_spec: Callable[..., StudySpec], capsys: pytest.CaptureFixture[str]
) -> None:
    spec = make_spec("grid", trials=2)
    assert app.run_study(spec, []) == 0
    err = capsys.readouterr().err
    # Its two points (5 and 14 epochs) are one network's first 5 and 14 epochs.
    assert "to train: 2 trials in 1 group of one shape and batch size, 1 network in all" in err
    assert "this run: 2 trials finished, 0 failed" in err
    assert "done: study 'mnist-grid': 2 of 2 trials finished, 0 failed" in err
    assert app.run_study(spec, []) == 0  # nothing left: this run did nothing, and says so
    err = capsys.readouterr().err
    assert "this run: 0 trials finished, 0 failed\ndone: study 'mnist-grid': 2 of 2 trials finished" in err


def test_a_study_state_counts_an_interrupted_point_once() -> None:
    """Re-queued attempts are among the queued points, not a pile of their own."""
    state = app.study_state(records.Outcomes(complete=2, waiting=160, requeued=166))
    assert state == "2 finished, 160 queued to run, 0 failed"
    assert app.study_state(records.Outcomes(complete=3, pruned=1, interrupted=1)) == (
        "4 finished (1 pruned), 1 interrupted, 0 failed"
    )
    before = records.Outcomes(complete=2, waiting=160, requeued=166)
    after = records.Outcomes(complete=2, waiting=160, requeued=190)
    assert app.this_run(before, after, points=True) == (
        "this run: 0 trials finished, 24 stopped while running (not failures: their points are queued to run again), "
        "0 failed"
    )
