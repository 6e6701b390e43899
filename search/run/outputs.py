"""What a run leaves in the study besides values: trial records and notes, the best model, figures, the study note."""

from __future__ import annotations

import os
import tempfile

import optuna
import optuna_dashboard
import torch
from optuna.artifacts import FileSystemArtifactStore, upload_artifact

from search import records
from search.analysis.effects import study_effects
from search.analysis.figures import study_figures
from search.analysis.note import history_markdown, study_note
from trainer.objective import TrialResult

BEST_MODEL_ATTR = "best_model"


def trial_note(result: TrialResult) -> str:
    """The mean history over the seeds as a markdown table, then each seed's last figures."""
    seeds = len(result.runs)
    shared = result.group_seconds > 1.05 * result.seconds  # a group of one holds its whole run
    header = (
        f"**{result.parameter_count:,} parameters** on `{result.device}`, {result.seconds:.1f} s"
        + (f" (its share of a {result.group_seconds:.1f} s shared run)" if shared else "")
        + ", "
        f"{seeds} seed{'s' if seeds != 1 else ''}"
        + (" — **diverged**" if result.diverged else "")
        + (" — pruned" if result.stopped else "")
    )
    mean = records.mean_of([[r.to_dict() for r in run.history] for run in result.runs])
    lines = [
        header,
        "",
        history_markdown([mean]),
    ]
    if seeds > 1:
        lines += ["", "The mean over the seeds. Each seed's last epoch:", ""]
        lines += ["| seed | epochs | val acc | test acc |", "|---:|---:|---:|---:|"]
        for run in result.runs:
            val, test = (f"{run.val_accuracy:.4f}", f"{run.test_accuracy:.4f}") if run.history else ("-", "-")
            lines.append(f"| {run.config.seed} | {len(run.history)} | {val} | {test} |")
    return "\n".join(lines)


INTERRUPTED_NOTE = (
    "**interrupted** while training (Ctrl-C or SIGTERM): not a failure of this point. Optuna shows it as "
    "FAIL; its point is queued again as a new trial, which resumes the group's checkpoint."
)


def note_interrupted(trial: optuna.Trial) -> None:
    """Say on the trial's dashboard page that it was interrupted and re-queued, not failed."""
    optuna_dashboard.save_note(trial, INTERRUPTED_NOTE)


def record_trial(trial: optuna.Trial, result: TrialResult, store: FileSystemArtifactStore) -> None:
    """Store the trial's result and note, and the first seed's weights when it beats the study's best so far."""
    records.write_results(trial, result)
    optuna_dashboard.save_note(trial, trial_note(result))
    if result.diverged or result.stopped or not result.complete or result.model is None:
        return
    best = trial.study.user_attrs.get(BEST_MODEL_ATTR)
    # A multi-objective study keeps every trial's model: any of them may be on the front.
    front = len(trial.study.directions) > 1
    if not front and best is not None and best["value"] >= result.value:
        return
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, f"trial-{trial.number}-model.pt")
        # A state dict, to be read back with torch.load(path, weights_only=True).
        torch.save({k: v.detach().cpu() for k, v in result.model.state_dict().items()}, path)
        artifact_id = upload_artifact(
            artifact_store=store, file_path=path, study_or_trial=trial, mimetype="application/octet-stream"
        )
    trial.set_user_attr(records.MODEL_ARTIFACT, artifact_id)
    if best is None or result.value > best["value"]:
        trial.study.set_user_attr(
            BEST_MODEL_ATTR, {"value": result.value, "trial": trial.number, "artifact_id": artifact_id}
        )


def save_study_outputs(study: optuna.Study, params: list[str]) -> None:
    """Save (replacing earlier versions) the study's figures and note for optuna-dashboard.

    They are of the validation accuracy (a multi-objective study's first objective); the
    dashboard draws a multi-objective study's front itself.
    """
    study, saved_to = records.accuracy_study(study), study
    effects = study_effects(study)  # gathered once: fANOVA takes seconds on a whole grid
    for graph_id, figure in study_figures(study, params, effects).items():
        optuna_dashboard.save_plotly_graph_object(saved_to, figure, graph_object_id=graph_id)
    optuna_dashboard.save_note(saved_to, study_note(study, effects))
