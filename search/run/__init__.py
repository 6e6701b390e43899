"""How a study runs.

- ``study``: create the study once, check its identity, where its checkpoints live (``StudyError``).
- ``worker``: one worker's loop: claim, hand out the next points, parts of groups, re-queueing.
- ``processes``: local worker processes, their events and errors.
- ``groups``: the one trial path: a group of trials asked, trained and told together.
- ``budget``: the exact trial budget that every worker shares (the claim).
- ``plan``: how many workers to start, and whether they compile the CPU's update.
- ``interrupts``: Ctrl-C and SIGTERM that wait for the storage to be consistent.
- ``progress``: what workers report and the terminal shows.
- ``outputs``: what a finished trial and study leave in the storage (models, figures, notes).

The modules are imported one by one (``from search.run.worker import run_worker``): importing
this package loads none of them.
"""
