"""What ``python -m search`` accepts: help that states each default once, ranges checked before anything
is created, workers capped, and passwords masked wherever a URL is printed."""

from __future__ import annotations

import re
import signal
import time
from pathlib import Path

import pytest

from search.__main__ import ANALYSES, MAX_SEED, READERS, STUDIES, TOOLS, build_parser
from search.spec import MAX_HEARTBEAT, StudySpec
from tests.search.conftest import fast_flags, run_search, start_search
from tests.search.test_cli import one_line_error
from tests.search.test_dashboard import start_dashboard, stop
from tests.search.test_failures import finished
from trainer.config import MAX_THREADS

SECRET = "s3cr"


def help_texts() -> dict[str, str]:
    """Each subcommand's ``--help``, as the user sees it."""
    parser = build_parser()
    commands = next(a for a in parser._actions if a.dest == "command")  # argparse keeps subparsers here
    return {name: sub.format_help() for name, sub in commands.choices.items()}


def test_no_help_text_states_a_default_twice_or_a_none_default() -> None:
    for name, text in help_texts().items():
        flat = " ".join(text.split())
        assert "(default: None)" not in flat and "(default: False)" not in flat, name
        for option in re.split(r"\s(?=--?[a-z])", flat):
            assert option.count("(default") <= 1, (name, option)


def test_every_subcommand_describes_itself_in_its_own_help() -> None:
    texts = help_texts()
    described = {**STUDIES, **READERS, **ANALYSES, **TOOLS}
    assert set(texts) == set(described)
    for name, text in texts.items():
        description = described[name]
        assert " ".join(description.split()) in " ".join(text.split()), name


def test_the_oat_help_counts_the_trials_an_oat_study_runs() -> None:
    count = len(StudySpec(kind="oat").points() or [])
    assert f"({count} trials, fewer under --max-epochs)" in " ".join(help_texts()["oat"].split())
    assert len(StudySpec(kind="oat", max_epochs=5).points() or []) < count


@pytest.mark.parametrize(
    ("args", "quoted"),
    [
        (["tpe", "--seed", "99999999999999999999"], f"0..{MAX_SEED}"),
        (["tpe", "--seed", "4294967295"], "'4294967295'"),
        (["grid", "--seed", "-1"], "'-1'"),
        (["tpe", "--study-name", ""], "''"),
        (["random", "--study-name", "  "], "'  '"),
        (["report", "--study-name", "", "--out", "x.html"], "''"),
        (["grid", "--heartbeat", "9999999999"], "1..3600, got '9999999999'"),
        (["tpe", "--heartbeat", "0"], "1..3600, got '0'"),
        (["random", "--threads", "100000"], "1..1024, got '100000'"),
    ],
)
def test_bad_seed_or_name_is_refused_before_anything_is_created(
    tmp_path: Path, mnist_dir: Path, args: list[str], quoted: str
) -> None:
    one_line_error(run_search(*args, *fast_flags(mnist_dir), cwd=tmp_path), quoted)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("field", "value", "high"),
    [("heartbeat", 9_999_999_999, MAX_HEARTBEAT), ("heartbeat", 0, MAX_HEARTBEAT), ("threads", 100_000, MAX_THREADS)],
)
def test_a_spec_bounds_its_heartbeat_and_threads(field: str, value: int, high: int) -> None:
    with pytest.raises(ValueError, match=rf"^{field} must be an integer in 1\.\.{high}, but got {field}={value}\.$"):
        StudySpec(kind="tpe", **{field: value})  # type: ignore[arg-type]


def test_largest_seed_runs_with_two_workers_and_resumes(tmp_path: Path, mnist_dir: Path) -> None:
    args = ["tpe", "--seed", str(MAX_SEED), "--workers", "2", *fast_flags(mnist_dir)]
    assert run_search(*args, "--trials", "2", cwd=tmp_path).returncode == 0
    proc = run_search(*args, "--trials", "3", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "note: 2 workers asked, 1 trial(s) left: starting 1" in proc.stderr


def test_workers_are_capped_at_the_trials_left(tmp_path: Path, mnist_dir: Path) -> None:
    proc = run_search("random", "--trials", "2", "--workers", "1000", *fast_flags(mnist_dir), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    notes = [line for line in proc.stderr.splitlines() if line.startswith("note:")]
    assert notes == ["note: 1000 workers asked, 2 trial(s) left: starting 2"], proc.stderr
    assert "2 worker(s)" in proc.stderr


def test_best_prints_the_model_file(tmp_path: Path, mnist_dir: Path) -> None:
    assert run_search("random", "--trials", "1", *fast_flags(mnist_dir), cwd=tmp_path).returncode == 0
    proc = run_search("best", "--study-name", "mnist-random", cwd=tmp_path)
    match = re.search(r"model artifact: (\S+), file (\S+) ", proc.stdout)
    assert match, proc.stdout
    path = tmp_path / match.group(2)
    assert path.name == match.group(1) and path.is_file()


@pytest.mark.postgres
def test_passwords_in_every_form_are_never_printed(
    own_pg_database: tuple[str, str], tmp_path: Path, mnist_dir: Path
) -> None:
    name, _ = own_pg_database
    # The server trusts local connections, so any password works: what matters is where it is printed.
    in_userinfo = f"postgresql://postgres:{SECRET}/t#x?y@127.0.0.1:5432/{name}"
    in_query = f"postgresql://postgres@127.0.0.1:5432/{name}?password={SECRET}et"
    flags = ["--artifacts", str(tmp_path / "artifacts"), *fast_flags(mnist_dir)]
    proc = start_search("random", "--trials", "500", f"--storage={in_userinfo}", *flags, cwd=tmp_path)
    deadline = time.monotonic() + 300
    while finished(in_query, "mnist-random") < 1:
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[1]
        time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 130, err
    assert f"--storage=postgresql://postgres:***@127.0.0.1:5432/{name}" in err, err
    outputs = [err]
    for url in (in_userinfo, in_query):
        outputs.append(run_search("list", "--storage", url, cwd=tmp_path).stdout)
        missing = url.replace(name, f"{name}_missing")
        outputs.append(run_search("list", "--storage", missing, cwd=tmp_path).stderr)
        assert "***" in outputs[-1], outputs[-1]
    dashboard, _, banner = start_dashboard(tmp_path, "--storage", in_query)
    assert "password=***" in banner, banner
    outputs += [banner, stop(dashboard)]
    for text in outputs:
        assert SECRET not in text, text
