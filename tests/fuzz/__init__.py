"""Fuzzing of untrusted inputs: seeded mutants, run in worker subprocesses."""
