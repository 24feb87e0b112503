"""Benchmarks that print their figures against a baseline measured in the same run:
``throughput`` (pipeline against a decode floor), ``detection`` (delay and false alarms over
simulated scenarios), ``audit`` (decision-path latency with deep audits on and off)."""
