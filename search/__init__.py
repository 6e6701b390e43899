"""Grid, random, TPE and one-at-a-time hyperparameter studies of MNIST networks, on Optuna."""

from search._startup import quiet_interrupts

with quiet_interrupts():  # `python -m search` loads torch and Optuna here: a Ctrl-C now ends quietly
    from search.space import REGULARIZATION, SEVEN, Parameter, distributions, grid_points, oat_points, search_space
    from search.spec import KINDS, StudySpec

__all__ = [
    "KINDS",
    "REGULARIZATION",
    "SEVEN",
    "Parameter",
    "StudySpec",
    "distributions",
    "grid_points",
    "oat_points",
    "search_space",
]
