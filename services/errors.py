"""What a service refuses, worded for whoever asked (the operator at the CLI)."""


class OpsError(Exception):
    """A refusal or a failure, worded for the operator."""
