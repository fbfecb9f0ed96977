"""Sonalyze simulation: simulation requests and their jobs (Kubernetes Jobs or subprocesses)."""
