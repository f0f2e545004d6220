"""Benchmarks: scripts that measure speed and memory, print figures and assert nothing.

Run them from the repository root as modules, e.g. `python -m benchmarks.throughput --preset
tiny`; README.md in this folder says what each measures. They are a package so that one can
import another's helpers (`from benchmarks import throughput`) without touching sys.path.
"""
