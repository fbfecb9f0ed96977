"""Sonalyze storage: the only owner of Postgres (tables, migrations, blobs, the event log)."""
