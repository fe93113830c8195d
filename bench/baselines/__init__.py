"""Baselines the benchmarks print beside our own figures: the framework's ceiling, the usual Python
event-sourcing design, Kafka's own producer tool, and the plainest ways to fill the catalog's read
models. Each returns its figures as a plain dict of floats."""
