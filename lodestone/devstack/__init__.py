"""The embedded stack: PostgreSQL, the Temporal dev server, and the dev JWT issuer keys."""
