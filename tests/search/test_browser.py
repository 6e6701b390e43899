"""The dashboard and the report as a person sees them, in headless Chromium.

Screenshots go to a temporary folder (``$SCREENSHOTS`` to choose it) for a person to look at.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from search import app
from search.spec import StudySpec
from tests.conftest import REPO
from tests.search.conftest import FAST

pytestmark = pytest.mark.browser
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SHOTS = Path(os.environ.get("SCREENSHOTS") or tempfile.mkdtemp(prefix="mnist-hpo-screenshots-"))

if CHROMIUM is None:
    pytest.skip("chromium is not installed (.ci/run installs Debian's chromium package)", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright (the dev extra) is not installed")


@pytest.fixture(scope="module")
def studies(tmp_path_factory: pytest.TempPathFactory, mnist_dir: Path) -> str:
    """An oat and a TPE study made by the project on fixture data."""
    storage = f"sqlite:///{tmp_path_factory.mktemp('browser') / 'studies.db'}"
    common = {**FAST, "storage": storage, "data_dir": str(mnist_dir)}
    assert app.run_study(StudySpec(kind="oat", **common), []) == 0  # type: ignore[arg-type]
    assert app.run_study(StudySpec(kind="tpe", trials=8, **common), []) == 0  # type: ignore[arg-type]
    return storage


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def dashboard(studies: str) -> Iterator[str]:
    yield from _serve(studies)


@pytest.fixture(scope="module")
def writable_dashboard(studies: str) -> Iterator[str]:
    yield from _serve(studies, "--allow-writes")


def _serve(studies: str, *flags: str) -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "search", "dashboard", "--storage", studies, "--port", str(port), *flags],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                break
        except OSError:
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            time.sleep(0.3)
    yield url
    proc.terminate()
    proc.wait(timeout=30)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield b
        b.close()


@pytest.fixture
def page(browser: object) -> Iterator[object]:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})  # type: ignore[attr-defined]
    pg = context.new_page()
    pg.errors = []  # type: ignore[attr-defined]
    pg.on("console", lambda m: m.type == "error" and pg.errors.append(m.text))  # type: ignore[attr-defined]
    pg.on("pageerror", lambda e: pg.errors.append(str(e)))  # type: ignore[attr-defined]
    yield pg
    context.close()


def shoot(page: object, name: str) -> None:
    SHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)  # type: ignore[attr-defined]


def study_id(page: object, dashboard: str, name: str) -> str:
    page.goto(f"{dashboard}/dashboard/")  # type: ignore[attr-defined]
    link = page.get_by_text(re.compile(rf"\b{name}\b")).first  # type: ignore[attr-defined]
    link.click()
    page.wait_for_url(re.compile(r"/dashboard/studies/\d+"))  # type: ignore[attr-defined]
    return re.search(r"/studies/(\d+)", page.url).group(1)  # type: ignore[attr-defined, union-attr]


def test_study_list_shows_the_studies(page: object, dashboard: str) -> None:
    page.goto(f"{dashboard}/dashboard/")  # type: ignore[attr-defined]
    page.get_by_text("mnist-oat").first.wait_for()  # type: ignore[attr-defined]
    page.get_by_text("mnist-tpe").first.wait_for()  # type: ignore[attr-defined]
    shoot(page, "dashboard-studies")


def _plot_count(page: object) -> int:
    return page.locator(".js-plotly-plot").count()  # type: ignore[attr-defined]


def test_study_page_shows_objective_history_curves_and_figures(page: object, dashboard: str) -> None:
    sid = study_id(page, dashboard, "mnist-oat")
    page.get_by_text("Learning curves by hidden_layers").first.wait_for(timeout=30_000)  # type: ignore[attr-defined]
    page.wait_for_timeout(1500)  # type: ignore[attr-defined]
    body = page.inner_text("body")  # type: ignore[attr-defined]
    assert "validation accuracy" in body  # the objective by name
    assert "History" in body and "Intermediate values" in body  # the history chart and the learning curves
    for name in ("hidden_layers", "hidden_units", "activation", "loss", "learning_rate", "epochs", "batch_size"):
        assert f"Learning curves by {name}" in body
    assert "Training time per network-epoch by batch size" in body
    assert "Change from the baseline, one parameter moved at a time" in body  # the oat effects
    # Every plot on the page drew something: an SVG with at least one trace.
    plots = page.locator(".js-plotly-plot")  # type: ignore[attr-defined]
    assert plots.count() >= 10
    for i in range(plots.count()):
        assert plots.nth(i).locator(".main-svg").count() > 0
    assert page.locator(".js-plotly-plot .scatterlayer .trace").count() >= 7 * 3  # type: ignore[attr-defined]
    shoot(page, "dashboard-oat-history")
    page.goto(f"{dashboard}/dashboard/studies/{sid}/note")  # type: ignore[attr-defined]
    page.get_by_text("One at a time: change from the baseline").first.wait_for()  # type: ignore[attr-defined]
    note = page.inner_text("body")  # type: ignore[attr-defined]
    assert re.search(r"Best: trial \d+: validation accuracy \d\.\d{4}\b", note)
    assert "fANOVA" not in note  # the oat changes replace importances on oat studies
    shoot(page, "dashboard-oat-note")
    assert not page.errors  # type: ignore[attr-defined]


def test_trial_page_shows_its_note_and_the_best_model(page: object, dashboard: str) -> None:
    sid = study_id(page, dashboard, "mnist-tpe")
    page.goto(f"{dashboard}/dashboard/studies/{sid}/trials")  # type: ignore[attr-defined]
    page.get_by_text("Best Trial").first.click()  # type: ignore[attr-defined]
    page.get_by_text("test acc").first.wait_for()  # type: ignore[attr-defined]
    body = page.inner_text("body")  # type: ignore[attr-defined]
    assert "parameters on" in body and "train loss" in body  # the trial's note with its table
    assert re.search(r"trial-\d+-model\.pt", body), "the best model's artifact is listed"
    shoot(page, "dashboard-trial")


# What a person would click to change a study, page by page (the study list, a study, its note, its trials).
WRITE_CONTROLS = {
    "": ["button >> text=/^create$/i", "[aria-label='rename study']", "[aria-label='delete study']"],
    "/STUDY": ["button >> text=Upload a New File"],
    "/STUDY/note": ["button:has(svg[data-testid='EditIcon'])"],
    "/STUDY/trials": ["button:has(svg[data-testid='EditIcon'])"],
}


def _visible_write_controls(page: object, url: str, sid: str, mode: str) -> dict[str, int]:
    """How many of each of ``WRITE_CONTROLS`` a person sees on each page; screenshots named by ``mode``."""
    found = {}
    for path, controls in WRITE_CONTROLS.items():
        page.goto(f"{url}/dashboard/{path.replace('/STUDY', f'studies/{sid}').lstrip('/')}")  # type: ignore[attr-defined]
        page.get_by_text("mnist-oat").first.wait_for()  # type: ignore[attr-defined]
        page.wait_for_timeout(1500)  # type: ignore[attr-defined]
        for control in controls:
            locator = page.locator(control)  # type: ignore[attr-defined]
            found[f"{path or '/'} {control}"] = sum(locator.nth(i).is_visible() for i in range(locator.count()))
        shoot(page, f"dashboard-{mode}{path.replace('/STUDY', '-study').replace('/', '-')}")
    return found


def test_read_only_dashboard_shows_no_write_controls(page: object, dashboard: str, writable_dashboard: str) -> None:
    sid = study_id(page, dashboard, "mnist-oat")
    writable = _visible_write_controls(page, writable_dashboard, sid, "writable")
    assert all(writable.values()), writable  # each control is there to be hidden
    read_only = _visible_write_controls(page, dashboard, sid, "read-only")
    assert not any(read_only.values()), read_only
    assert page.locator("#read-only-banner").is_visible()  # type: ignore[attr-defined]
    assert not page.errors  # type: ignore[attr-defined]


def test_dashboard_refuses_writes(dashboard: str) -> None:
    import urllib.error
    import urllib.request

    request = urllib.request.Request(
        f"{dashboard}/api/studies/1/note",
        data=b'{"version": 9, "body": "x"}',
        method="PUT",
        headers={"Content-Type": "application/json"},
    )
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(request, timeout=10)
    assert info.value.code == 403


def test_report_renders_every_figure_without_console_errors(page: object, studies: str, tmp_path: Path) -> None:
    for name in ("mnist-oat", "mnist-tpe"):
        out = tmp_path / f"{name}.html"
        app.report(studies, name, str(out))
        page.goto(out.as_uri())  # type: ignore[attr-defined]
        page.wait_for_load_state("load")  # type: ignore[attr-defined]
        page.wait_for_timeout(1000)  # type: ignore[attr-defined]
        containers = page.locator(".plotly-graph-div")  # type: ignore[attr-defined]
        assert containers.count() >= 9
        for i in range(containers.count()):
            container = containers.nth(i)
            assert container.locator(".main-svg").count() > 0, f"figure {i} of {name} is empty"
            assert container.evaluate("el => el.data && el.data.length") > 0
        body = page.inner_text("body")  # type: ignore[attr-defined]
        assert "Which choices matter" in body
        effects = page.locator('[data-graph^="effects-"] .plotly-graph-div')  # type: ignore[attr-defined]
        if name == "mnist-oat":
            assert page.locator('[data-graph="effects-oat"] .main-svg').count() > 0  # type: ignore[attr-defined]
            assert "Change from the baseline" in body
        else:
            assert page.locator('[data-graph="effects-values"] .main-svg').count() > 0  # type: ignore[attr-defined]
            assert "Validation accuracy per value" in body and "PED-ANOVA" in body
        assert effects.count() >= 1
        shoot(page, f"report-{name}")
    assert not page.errors, page.errors  # type: ignore[attr-defined]
