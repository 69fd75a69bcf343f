"""What a service refuses, worded for whoever asked. The API answers each as a problem
(api/problems.py: NotFound 404, Conflict 409, Invalid 422, RateLimited 429); the CLI prints OpsError."""


class OpsError(Exception):
    """A refusal or a failure, worded for the operator."""


class NotFound(LookupError):
    """No such thing for this tenant (another tenant's is not found either)."""

    def __init__(self, kind: str, ident: object = None) -> None:
        super().__init__(f"{kind} not found" if ident is None else f"{kind} {ident} not found")
        self.kind, self.ident = kind, ident


class Conflict(Exception):
    """The request conflicts with what is stored."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code, self.detail = code, detail


class Invalid(ValueError):
    """The request is well formed but cannot be done as asked; `pointer` names the input at fault.
    `errors`, when given, lists every problem found ({pointer, message, code} each), the one
    named by code, detail and pointer first."""

    def __init__(
        self, code: str, detail: str, pointer: str | None = None, errors: list[dict[str, str]] | None = None
    ) -> None:
        super().__init__(detail)
        self.code, self.detail, self.pointer, self.errors = code, detail, pointer, errors


class RateLimited(Exception):
    """Over the tenant's rate: a token is there again in `retry_after` seconds."""

    def __init__(self, detail: str, retry_after: float) -> None:
        super().__init__(detail)
        self.detail, self.retry_after = detail, retry_after
