"""Benchmarks of lossfns against its peers: ``python -m benchmarks --help``."""
