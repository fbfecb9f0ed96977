"""The local stack: embedded Postgres, migrations and the five services as processes."""
