"""`lodestone ops ...`: the operator's commands (dead letters, redrive, redeliver, schedules,
workflow histories). cli.ops.cli holds the Typer app; the other modules do the work."""
