"""The fault suite: crashes, restarts and dependency outages against a stack of its own.
Run it with `python -m tests.faults` (`make faults`); tests/test_faults.py runs a bounded one."""
