"""What ``bench replay`` can replay, named without loading torch (the command line's help lists them)."""

SAMPLERS = ("grid", "random", "tpe", "gp")
PRUNERS = ("none", "median", "hyperband")
