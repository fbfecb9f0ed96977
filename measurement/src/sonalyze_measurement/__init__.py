"""Sonalyze measurement: Sweep design, recording upload, validation and analysis."""
