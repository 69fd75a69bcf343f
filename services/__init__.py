"""Floor 3: what the API routes and the CLI both do (submitting and starting jobs, redriving,
schedules, tenants), starting workflows by name. It imports workflows' input types, never
the API or the CLI."""
