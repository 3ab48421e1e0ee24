"""Benchmarks for creditgraph's usage write path (see README.md)."""
