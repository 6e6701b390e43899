"""``python -m search bench``: the JSON of a replay, and bad input ending in one line."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from search.__main__ import main
from search.bench import summary  # noqa: F401  (imported before a test hides scipy)
from tests.search.bench.conftest import random_table


def run_main(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    out, err = capsys.readouterr()
    return int(exit_info.value.code or 0), out, err


def test_replay_prints_the_json_of_the_issue(table_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["bench", "replay", "--table", str(table_file), "--samplers", "random,tpe", "--trials", "12"]
    code, out, _ = run_main([*args, "--repeats", "3", "--format", "json", "--processes", "1"], capsys)
    assert code == 0
    result = json.loads(out)
    best = random_table().best()
    assert result["table"]["best"] == pytest.approx(best)
    for name in ("random", "tpe"):
        s = result["samplers"][name]
        mean = np.array(s["best_so_far_mean"])
        assert len(mean) == 12 and np.all(np.diff(mean) >= 0) and mean[-1] <= best + 1e-9
        assert all(lo <= m <= hi for m, (lo, hi) in zip(mean, s["best_so_far_ci"], strict=True))
        assert 1 <= s["mean_rank"] <= 2 and 0 <= s["within_0.002"] <= 1
        low, high = s["within_0.002_ci"]
        assert low <= s["within_0.002"] <= high
        test = np.array(s["test_of_best_mean"])
        assert len(test) == 12 and test[-1] <= result["table"]["best_test"] + 1e-9
        assert all(lo <= m <= hi for m, (lo, hi) in zip(test, s["test_of_best_ci"], strict=True))
        assert [r["seed"] for r in s["repeats"]] == [1, 2, 3]
        trial = s["repeats"][0]["trials"][0]
        assert set(trial) >= {"params", "value", "test"} and "epochs" in trial["params"]
    paired = result["paired"]["tpe-random"]
    assert paired["after"] == [10, 12]
    assert set(paired) >= {"after", "mean_difference", "ci", "probability_of_improvement"}
    assert all(0 <= p <= 1 for p in paired["probability_of_improvement"])


def test_replay_writes_a_report(table_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "r" / "replay.html"
    args = ["bench", "replay", "--table", str(table_file), "--samplers", "grid,random", "--trials", "8"]
    code, text, _ = run_main([*args, "--repeats", "2", "--processes", "1", "--out", str(out)], capsys)
    assert code == 0 and "plotly" in out.read_text() and "grid" in text and "random" in text


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--samplers", "random,cmaes"], "unknown sampler 'cmaes'"),
        (["--trials", "0"], "--trials: must be an integer >= 1"),
        (["--pruner", "sometimes"], "invalid choice: 'sometimes'"),
        (["--samplers", ","], "names no sampler"),
        (["--repeats", "1000000000"], "--repeats: must be an integer in 1..10000"),
        (["--trials", "1000000000"], "--trials: must be an integer in 1..100000"),
    ],
)
def test_bad_replay_arguments_end_in_one_line(
    table_file: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    code, out, err = run_main(["bench", "replay", "--table", str(table_file), *args], capsys)
    assert code != 0 and message in err and len(err.strip().splitlines()) == 1 and out == ""


def test_a_file_that_is_not_a_table_ends_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "notes.npz"
    bad.write_text("not a table")
    code, _, err = run_main(["bench", "replay", "--table", str(bad)], capsys)
    assert code == 1 and "is not a benchmark table" in err and len(err.strip().splitlines()) == 1


def test_a_table_of_another_version_ends_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    table = random_table()
    path = tmp_path / "v2.npz"
    header = {**table.header(), "version": 2}
    np.savez(path, curves=table.curves, header=np.array(json.dumps(header)))
    code, _, err = run_main(["bench", "replay", "--table", str(path)], capsys)
    assert code == 1 and "format version 2" in err and len(err.strip().splitlines()) == 1


def test_gp_without_scipy_ends_in_one_line(
    table_file: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "scipy", None)  # import scipy now raises ImportError
    code, _, err = run_main(["bench", "replay", "--table", str(table_file), "--samplers", "gp"], capsys)
    assert code == 2 and "needs scipy" in err and len(err.strip().splitlines()) == 1


def test_the_shipped_table_loads() -> None:
    from search.bench.cli import SHIPPED
    from search.bench.table import load

    if not SHIPPED.exists():
        pytest.skip("no table shipped in this checkout yet")
    table = load(SHIPPED)
    assert len(table.points()) == 3**6 and table.fidelities == (5, 14, 25)
    assert table.info["data"]["train_images"] > 0


@pytest.mark.parametrize("kind", ["tpe", "random"])
def test_space_grid_makes_a_study_over_the_grid_values(kind: str) -> None:
    from optuna.distributions import CategoricalDistribution

    from search.__main__ import build_parser, spec_from_args
    from search.space import SEVEN

    spec = spec_from_args(build_parser().parse_args([kind, "--space", "grid"]))
    assert spec.distributions == {p.name: CategoricalDistribution(p.grid) for p in SEVEN}
    assert not spec_from_args(build_parser().parse_args([kind])).grid_space


def test_build_from_an_absent_study_ends_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    storage = f"sqlite:///{tmp_path / 'studies.db'}"
    args = ["bench", "build", "--from-study", "nope", "--storage", storage, "--out", str(tmp_path / "t.npz")]
    code, _, err = run_main(args, capsys)
    assert code == 1 and "no study 'nope'" in err and len(err.strip().splitlines()) == 1
    assert sorted(tmp_path.iterdir()) == []  # a read that writes nothing: no table, no database, no lock


@pytest.mark.parametrize("command", ["replay", "merge"])
def test_an_empty_table_file_ends_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str) -> None:
    empty = tmp_path / "empty.npz"
    empty.write_bytes(b"")
    args = ["--table", str(empty)] if command == "replay" else [str(empty), "--out", str(tmp_path / "m.npz")]
    code, _, err = run_main(["bench", command, *args], capsys)
    assert code == 1 and "is empty" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("out", ["{tmp}", "/proc/table.npz"])
def test_a_table_that_cannot_be_written_ends_in_one_line_and_leaves_nothing(
    table_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], out: str
) -> None:
    folder = tmp_path / "out"
    folder.mkdir()
    code, _, err = run_main(["bench", "merge", str(table_file), "--out", out.format(tmp=folder)], capsys)
    assert code == 1 and "cannot write" in err and len(err.strip().splitlines()) == 1
    assert list(folder.iterdir()) == [] and not list(tmp_path.glob("*partial*"))


def test_a_header_edited_with_its_curves_unchanged_is_refused(
    table_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with np.load(table_file) as archive:
        header, curves = json.loads(str(archive["header"])), archive["curves"]
    header["seeds"] = [7, 8]  # merged with a table of seeds 1 and 2, it would no longer look like a duplicate
    edited = tmp_path / "edited.npz"
    np.savez(edited, curves=curves, header=np.array(json.dumps(header)))
    code, _, err = run_main(["bench", "replay", "--table", str(edited)], capsys)
    assert code == 1 and "does not match its own hash" in err and len(err.strip().splitlines()) == 1


def test_a_grid_replay_stops_at_the_grids_size(table_file: Path) -> None:
    from search.bench.replay import replay_one
    from search.bench.table import load

    table = load(table_file)
    run = replay_one(table, "grid", seed=1, trials=10 * len(table.points()) * len(table.fidelities))
    points = [tuple(sorted(t.params.items())) for t in run.trials]
    assert len(points) == len(set(points)) == len(table.points()) * len(table.fidelities)


def test_a_report_that_cannot_be_written_ends_in_one_line(
    table_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["bench", "replay", "--table", str(table_file), "--samplers", "random", "--trials", "4", "--repeats", "1"]
    code, _, err = run_main([*args, "--processes", "1", "--out", str(tmp_path)], capsys)
    assert code == 1 and "cannot write" in err and len(err.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == [table_file]
