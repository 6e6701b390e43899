"""What ``bench replay`` can replay, named without loading torch (the command line's help lists them)."""

SAMPLERS = ("grid", "shuffled", "random", "tpe", "gp", "nsga2")
COSTS = ("parameters", "seconds")  # the second objective of a multi-objective replay
PRUNERS = ("none", "median", "hyperband")
