"""``effects`` written out: one JSON object, CSV rows, or plain-text tables for a terminal."""

from __future__ import annotations

import csv
import math
import textwrap
from typing import Any, NamedTuple, TextIO

from search.analysis.effects import CHANCE, CONFIDENCE, Effects
from search.analysis.text import wrapped
from search.analysis.verdicts import CLAIMS

IMPORTANCE_NAMES = {"PedAnovaImportanceEvaluator": "PED-ANOVA", "FanovaImportanceEvaluator": "fANOVA"}
CSV_FIELDS = (
    "section",
    "parameter",
    "value",
    "n",
    "median",
    "mean",
    "best",
    "reference",
    "contrast",
    "ci_low",
    "ci_high",
    "change",
    "p",
    "p_adjusted",
    "adjusted_low",
    "adjusted_high",
    "verdict",
    "test_change",
    "test_low",
    "test_high",
    "replicates",
    "rank_p",
    "seed",
    "at_chance",
    "diverged",
    "share",
    "cost",
    "accuracy",
    "trial",
    "parameters_change",
    "seconds_change",
)
IMPORTANCE_LINE = (
    "PED-ANOVA: how differently a parameter's values are spread among the best 10% of trials than among all; "
    "fANOVA: its share of the variance of a random forest fitted to every trial. They read different things "
    "(the top against the whole range), so they can disagree; on a complete grid the exact ANOVA is the one to read."
)


def to_json(e: Effects) -> dict[str, Any]:
    """The effects as one strict-JSON-ready object (a non-finite number is null)."""
    return finite(
        {
            "study": e.study,
            "kind": e.kind,
            "trials": e.trials,
            "seeds": e.seeds,
            "confidence": CONFIDENCE,
            "margin": e.margin,
            "binning": e.binning,
            "fixed": e.fixed,
            "main_effects_method": e.contrast_method or "description only",
            "main_effects": [r._asdict() for r in e.main_effects],
            "oat_method": e.oat_method,
            "oat": [r._asdict() for r in e.oat],
            "failed_seeds": [f._asdict() for f in e.failed_seeds],
            "interaction_tests": [
                {"parameters": list(t.parameters), "share": t.share, "p": t.p, "verdict": t.verdict,
                 "method": t.method}
                for t in e.interaction_tests
            ],  # fmt: skip
            "interactions": [
                {
                    "parameters": list(i.parameters),
                    "share": i.share,
                    "p": i.p,
                    "rows": i.rows,
                    "columns": i.columns,
                    "medians": i.medians,
                    "method": i.method,
                }
                for i in e.interactions
            ],
            "importance": e.importance,
            "exact_anova": e.exact_anova,
            "anova_above_chance": e.anova_above_chance,
            "at_chance": {"threshold": CHANCE, **_failure_totals(e), "per_value": [r._asdict() for r in e.failures]},
            "notes": e.notes,
            "given": [g._asdict() for g in e.given],
        }
    )


def finite(value: Any) -> Any:
    """``value`` with every NaN or infinity, however deep in lists and dicts, made None (JSON's null)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    return value


def _failure_totals(e: Effects) -> dict[str, int]:
    """Trials at chance and diverged in the whole study: the levels of one parameter hold each trial once."""
    first = [r for r in e.failures if r.parameter == e.failures[0].parameter] if e.failures else []
    return {"trials": sum(r.at_chance for r in first), "diverged": sum(r.diverged for r in first)}


def csv_rows(e: Effects, extra: list[dict[str, Any]] = ()) -> list[dict[str, Any]]:  # type: ignore[assignment]
    """One row per main effect, oat change, failed seed, importance share and failure count (and ``extra``
    rows: fronts, cost changes); ``section`` says which."""
    rows: list[dict[str, Any]] = []
    for r in e.main_effects:
        rows.append({"section": "main_effect", **{k: getattr(r, k) for k in CSV_FIELDS if hasattr(r, k)}})
    for c in e.oat:
        rows.append({"section": "oat", **{k: getattr(c, k) for k in CSV_FIELDS if hasattr(c, k)}, "n": c.seeds})
    for f in e.failed_seeds:
        rows.append({"section": "failed_seed", "trial": f.trial, "value": f.point, "seed": f.seed,
                     "accuracy": f.accuracy})  # fmt: skip
    for t in e.interaction_tests:
        rows.append({"section": "interaction_test", "parameter": " x ".join(t.parameters), "share": t.share,
                     "p_adjusted": t.p, "verdict": t.verdict})  # fmt: skip
    for name, shares in {**e.importance, **({"exact_anova": e.exact_anova} if e.exact_anova else {})}.items():
        rows += [{"section": name, "parameter": p, "share": s} for p, s in shares.items()]
    for g in e.given:
        rows.append({"section": f"given {g.given}={g.given_value}", "parameter": g.parameter, "value": g.value,
                     "reference": g.reference, "n": g.pairs, "change": g.change, "adjusted_low": g.low,
                     "adjusted_high": g.high, "verdict": g.verdict})  # fmt: skip
    for f in e.failures:
        rows.append({"section": "failures", "parameter": f.parameter, "value": f.value, "n": f.n,
                     "at_chance": f.at_chance, "diverged": f.diverged})  # fmt: skip
    return rows + list(extra)


def write_csv(e: Effects, out: TextIO, extra: list[dict[str, Any]] = ()) -> None:  # type: ignore[assignment]
    """Write ``csv_rows`` with a header to ``out``."""
    writer = csv.DictWriter(out, fieldnames=CSV_FIELDS, restval="", extrasaction="ignore")
    writer.writeheader()
    writer.writerows(csv_rows(e, extra))


def _num(value: float | None, places: int = 4, sign: bool = False) -> str:
    if value is None:
        return "-"
    return f"{value:+.{places}f}" if sign else f"{value:.{places}f}"


def _interval(low: float | None, high: float | None, sign: bool = False) -> str:
    return "-" if low is None or high is None else f"[{_num(low, sign=sign)}, {_num(high, sign=sign)}]"


class Table(NamedTuple):
    """One titled table of the effects, its cells already written as text."""

    title: str
    header: list[str]
    rows: list[list[str]]
    section: str = ""  # "main" for the main effects
    caption: str = ""  # a line under the table: how the numbers were made
    names: int = 2  # the first columns hold names (left-aligned); the rest numbers


def _p(value: float | None) -> str:
    if value is None:
        return "-"
    return "<0.0001" if value < 1e-4 else f"{value:.4f}"


def _main_table(e: Effects) -> Table:
    how = e.contrast_method
    title = "Main effects: validation accuracy per value (n, median, mean, best: description)"
    caption = (f"contrast: each value against the reference value ({how})" if how
               else "description only, no interval")  # fmt: skip
    header = ["parameter", "value", "n", "median", "mean", "best", "vs", "contrast", "interval"]
    if e.kind == "grid":
        header.append("higher in")
    rows = []
    for r in e.main_effects:
        is_ref = r.value == r.reference
        row = [r.parameter, r.value, str(r.n), _num(r.median), _num(r.mean), _num(r.best),
               "(reference)" if is_ref else r.reference, "" if is_ref else _num(r.contrast, sign=True),
               "" if is_ref else _interval(r.ci_low, r.ci_high, sign=True)]  # fmt: skip
        if e.kind == "grid":
            row.append("" if is_ref or r.wins is None else f"{r.wins:.0%} of {r.pairs}")
        rows.append(row)
    if all(r.contrast is None or r.value == r.reference for r in e.main_effects):  # oat: the changes say it
        header, rows = header[:6], [r[:6] for r in rows]
    return Table(title, header, rows, "main", caption)


def _given_table(e: Effects) -> Table:
    first = e.given[0]
    m = sum(g.low is not None for g in e.given)
    return Table(
        f"{first.parameter} within each value of the others: each value against {first.reference}, over the "
        "matched pairs there",
        ["given", "value", first.parameter, "pairs", "change", "simultaneous", "verdict"],
        [[g.given, g.given_value, g.value, str(g.pairs), _num(g.change, sign=True),
          _interval(g.low, g.high, sign=True), g.verdict] for g in e.given],
        caption=f"m = {m} contrasts, margin +-{e.margin:.4f}; Bonferroni intervals: t over seeds + validation-image "
        "noise; matters: beyond +-margin; negligible: TOST inside it; nonzero: excludes 0, not beyond",
    )  # fmt: skip


def _replicates(value: bool | None) -> str:
    return "-" if value is None else ("yes" if value else "no")


def _oat_table(e: Effects) -> Table:
    return Table(
        "One at a time: change from the baseline in validation accuracy, over the training seeds",
        ["parameter", "value", "K", "change", "simultaneous", "p adj", "verdict", "test change", "replicates"],
        [
            [c.parameter, c.value, f"{c.seeds}{'' if c.paired else ' unpaired'}", _num(c.change, sign=True),
             _interval(c.adjusted_low, c.adjusted_high, sign=True), _p(c.p_adjusted), c.verdict,
             _num(c.test_change, sign=True), _replicates(c.replicates) if c.verdict in CLAIMS else ""]
            for c in e.oat
        ],
        "oat",
        e.oat_method,
    )  # fmt: skip


def _visible(t: Table) -> Table:
    """``t`` without the columns no row fills (every cell empty or ``-``)."""
    if not t.rows:
        return t
    keep = [i for i in range(len(t.header)) if i < t.names or any(r[i] not in ("", "-") for r in t.rows)]
    return t._replace(header=[t.header[i] for i in keep], rows=[[r[i] for i in keep] for r in t.rows])


def tables(e: Effects) -> list[Table]:
    """The effects as titled tables, in reading order; the text and markdown forms both draw these."""
    out = [_oat_table(e)] if e.oat else []
    if e.failed_seeds:
        out.append(Table(
            f"Failed seeds (validation accuracy NaN, or at chance, below {CHANCE}, beside working seeds): "
            "left out of their comparisons",
            ["trial", "point", "seed", "validation"],
            [[str(f.trial), f.point, str(f.seed), _num(f.accuracy)] for f in e.failed_seeds],
        ))  # fmt: skip
    out.append(_main_table(e))
    if e.interaction_tests:
        out.append(Table(
            "Interaction tests: each pair's share of the variance beyond every main effect, and its family-wise p",
            ["pair", "share", "p adj", "verdict"],
            [[f"{a} x {b}", f"{t.share:.1%}", _p(t.p), t.verdict] for t in e.interaction_tests
             for a, b in [t.parameters]],
            caption=f"p: {e.interaction_tests[0].method}",
            names=1,
        ))  # fmt: skip
    for i in e.interactions:
        a, b = i.parameters
        out.append(Table(
            f"Interaction {a} x {b}: {i.share:.1%} of the variance beyond every main effect (p = {_p(i.p)}; medians)",
            [f"{a} \\ {b}", *i.columns],
            [[r, *[_num(m) for m in ms]] for r, ms in zip(i.rows, i.medians, strict=True)],
            caption="" if e.interaction_tests else f"p: {i.method}",  # said once, under the tests' table
            names=1,
        ))  # fmt: skip
    if e.given:
        out.append(_given_table(e))
    if e.importance or e.exact_anova:
        columns = {**{IMPORTANCE_NAMES.get(k, k): v for k, v in e.importance.items()}}
        if e.exact_anova:
            columns["exact grid ANOVA"] = e.exact_anova
        if e.anova_above_chance:
            columns[f"ANOVA above {CHANCE}"] = e.anova_above_chance
        terms = list(dict.fromkeys(k for c in columns.values() for k in c))
        out.append(Table(
            "Importance (shares of 1)",
            ["term", *columns],
            [[t, *[_num(c[t], 3) if t in c else "" for c in columns.values()]] for t in terms],
            caption=IMPORTANCE_LINE if e.importance else "",
            names=1,
        ))  # fmt: skip
    failing = [f for f in e.failures if f.at_chance or f.diverged]
    out.append(Table(
        f"At chance (validation accuracy below {CHANCE}) and diverged trials",
        ["parameter", "value", "n", "at chance", "diverged"],
        [[f.parameter, f.value, str(f.n), str(f.at_chance), str(f.diverged)] for f in failing],
    ))  # fmt: skip
    return [_visible(t) for t in out]


def _padded(t: Table) -> list[str]:
    """Columns padded to their widest cell; the first two (names) left-aligned, the rest (numbers) right-aligned."""
    widths = [max(len(c) for c in col) for col in zip(t.header, *t.rows, strict=True)]

    def line(cells: list[str]) -> str:
        return "  ".join(
            c.ljust(w) if i < t.names else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    return [line(t.header), line(["-" * w for w in widths]), *[line(r) for r in t.rows]]


def markdown(t: Table, names: int = 2) -> list[str]:
    """A table in markdown for optuna-dashboard's notes: the first ``names`` columns left-aligned, numbers right."""
    align = ["---" if i < names else "---:" for i in range(len(t.header))]
    return [f"| {' | '.join(r)} |" for r in (t.header, align, *t.rows)]


def headline(e: Effects) -> str:
    """``study (kind): N complete trials, up to K seed(s) each``."""
    return f"{e.study} ({e.kind}): {e.trials} complete trials, up to {e.seeds} seed(s) each"


def to_text(e: Effects) -> str:
    """The effects as plain-text tables for a terminal, every line within ``WIDTH`` characters."""
    out = [headline(e)]
    for t in tables(e):
        out += ["", *wrapped(t.title), *(_padded(t) if t.rows else ["none"])]
        if t.section == "oat":
            out += [line for c in e.oat if c.note for line in wrapped(f"note, {c.parameter} {c.value}: {c.note}")]
        if t.caption:
            out += wrapped(t.caption)
    if e.notes:
        out += ["", *[line for n in e.notes for line in wrapped(f"note: {n}")]]
    return "\n".join(out)


def explain() -> str:
    """The long form of the method footnotes: how the oat verdicts, the validation images' noise, the
    contrasts and the interactions are decided (the modules' own descriptions)."""
    from search.analysis import anova, contrasts, oat, sampling

    parts = [oat.__doc__, sampling.__doc__, contrasts.__doc__, anova.__doc__, IMPORTANCE_LINE]
    return "\n".join(line for part in parts for line in [*wrapped(textwrap.dedent(part or "").strip()), ""])
