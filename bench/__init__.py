"""Benchmark-only code: the baselines users would pick instead (MiniLM encoder, BM25) served by the
product's own app, the load generator, and the fuzzing driver. Not part of the installed product."""
