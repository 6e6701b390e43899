"""``effects`` written out: one JSON object, CSV rows, or plain-text tables for a terminal."""

from __future__ import annotations

import csv
import math
from typing import Any, NamedTuple, TextIO

from search.analysis.effects import CHANCE, CONFIDENCE, Effects

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
    "at_chance",
    "diverged",
    "share",
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
            "main_effects_method": e.contrast_method or "description only",
            "main_effects": [r._asdict() for r in e.main_effects],
            "oat_method": e.oat_method,
            "oat": [r._asdict() for r in e.oat],
            "interactions": [
                {
                    "parameters": list(i.parameters),
                    "share": i.share,
                    "p": i.p,
                    "rows": i.rows,
                    "columns": i.columns,
                    "medians": i.medians,
                }
                for i in e.interactions
            ],
            "importance": e.importance,
            "exact_anova": e.exact_anova,
            "anova_above_chance": e.anova_above_chance,
            "at_chance": {"threshold": CHANCE, **_failure_totals(e), "per_value": [r._asdict() for r in e.failures]},
            "notes": e.notes,
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


def csv_rows(e: Effects) -> list[dict[str, Any]]:
    """One row per main effect, oat change, importance share and failure count; ``section`` says which."""
    rows: list[dict[str, Any]] = []
    for r in e.main_effects:
        rows.append({"section": "main_effect", **{k: getattr(r, k) for k in CSV_FIELDS if hasattr(r, k)}})
    for c in e.oat:
        rows.append({"section": "oat", **{k: getattr(c, k) for k in CSV_FIELDS if hasattr(c, k)}, "n": c.seeds})
    for name, shares in {**e.importance, **({"exact_anova": e.exact_anova} if e.exact_anova else {})}.items():
        rows += [{"section": name, "parameter": p, "share": s} for p, s in shares.items()]
    for f in e.failures:
        rows.append({"section": "failures", "parameter": f.parameter, "value": f.value, "n": f.n,
                     "at_chance": f.at_chance, "diverged": f.diverged})  # fmt: skip
    return rows


def write_csv(e: Effects, out: TextIO) -> None:
    """Write ``csv_rows`` with a header to ``out``."""
    writer = csv.DictWriter(out, fieldnames=CSV_FIELDS, restval="")
    writer.writeheader()
    writer.writerows(csv_rows(e))


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
    caption: str = ""  # a line under the title: how the numbers were made


def _p(value: float | None) -> str:
    if value is None:
        return "-"
    return "<0.0001" if value < 1e-4 else f"{value:.4f}"


def _main_table(e: Effects) -> Table:
    how = e.contrast_method
    title = (
        f"Main effects: validation accuracy per value (n, median, mean, best: description), and each value "
        f"against the reference value ({how}, {CONFIDENCE:.0%} interval)"
        if how
        else "Main effects: validation accuracy per value (description only, no interval)"
    )
    header = ["parameter", "value", "n", "median", "mean", "best", "vs", "contrast", f"{CONFIDENCE:.0%}"]
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
    return Table(title, header, rows, "main")


def _oat_table(e: Effects) -> Table:
    pct = f"{CONFIDENCE:.0%}"
    return Table(
        "One at a time: change from the baseline in validation accuracy; intervals are over the training seeds, "
        "on this validation set; the test columns replicate the change on the test set",
        ["parameter", "value", "seeds", "change", pct, "p", "p adj", "adjusted interval", "verdict",
         "test change", f"test {pct}"],
        [
            [c.parameter, c.value, f"{c.seeds}{' paired' if c.paired else ''}", _num(c.change, sign=True),
             _interval(c.ci_low, c.ci_high, sign=True), _p(c.p), _p(c.p_adjusted),
             _interval(c.adjusted_low, c.adjusted_high, sign=True), c.verdict + (f" ({c.note})" if c.note else ""),
             _num(c.test_change, sign=True), _interval(c.test_low, c.test_high, sign=True)]
            for c in e.oat
        ],
        "oat",
        e.oat_method,
    )  # fmt: skip


def tables(e: Effects) -> list[Table]:
    """The effects as titled tables, in reading order; the text and markdown forms both draw these."""
    out = [_oat_table(e)] if e.oat else []
    out.append(_main_table(e))
    for i in e.interactions:
        a, b = i.parameters
        out.append(Table(
            f"Interaction {a} x {b}: {i.share:.1%} of the variance beyond every main effect "
            f"(permutation p = {i.p:.3f}; medians)",
            [f"{a} \\ {b}", *i.columns],
            [[r, *[_num(m) for m in ms]] for r, ms in zip(i.rows, i.medians, strict=True)],
        ))  # fmt: skip
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
        ))  # fmt: skip
    failing = [f for f in e.failures if f.at_chance or f.diverged]
    out.append(Table(
        f"At chance (validation accuracy below {CHANCE}) and diverged",
        ["parameter", "value", "n", "at chance", "diverged"],
        [[f.parameter, f.value, str(f.n), str(f.at_chance), str(f.diverged)] for f in failing],
    ))  # fmt: skip
    return out


def _padded(t: Table) -> list[str]:
    """Columns padded to their widest cell; the first two (names) left-aligned, the rest (numbers) right-aligned."""
    widths = [max(len(c) for c in col) for col in zip(t.header, *t.rows, strict=True)]

    def line(cells: list[str]) -> str:
        return "  ".join(
            c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))
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
    """The effects as plain-text tables for a terminal."""
    out = [headline(e)]
    for t in tables(e):
        out += ["", t.title, *([t.caption] if t.caption else []), *(_padded(t) if t.rows else ["none"])]
    if e.notes:
        out += ["", *[f"note: {n}" for n in e.notes]]
    return "\n".join(out)
