"""The parts of `python -m textgan.sweep` (see that module for the grid file and the CLI).

    spec.py         read and check the grid file: [sweep], [score], [fixed], [grid]
    plan.py         expand it into runs (grid or random sample, times seeds), name and validate them
    scores.py       flatten a report.json, the trade-off score, mean and std over seeds
    runner.py       run each run's stages as subprocesses, in parallel, with sweep.json as state
    leaderboard.py  rank configurations and write leaderboard.md / leaderboard.json
"""
