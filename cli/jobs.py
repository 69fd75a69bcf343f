"""`lodestone jobs ...`: submit, list, show and watch jobs through the HTTP API, as the
tenant whose bearer token LODESTONE_TOKEN holds. Results go to stdout; errors to stderr with
exit code 2; `watch` exits 0 when the job ended delivered or succeeded, 1 when it failed or
was cancelled."""

import json
import sys
import uuid
from pathlib import Path
from typing import Annotated, Any, NoReturn

import httpx
import typer

from cli.job_view import View, view_for
from cli.ops.runner import fail, note
from cli.sse import StreamError, StreamLost, follow
from lodestone.settings import get_settings

jobs_app = typer.Typer(help="Submit, list, show and watch jobs through the API.", no_args_is_help=True)
JobId = Annotated[uuid.UUID, typer.Argument(help="the job's id")]
SUCCESS = frozenset({"delivered", "succeeded"})


def _exit(message: object) -> NoReturn:
    raise fail(message, exit_code=2)


def _problem(resp: httpx.Response) -> str:
    """An RFC 7807 problem (or any error body) as one line."""
    try:
        body = resp.json()
    except ValueError:
        return f"HTTP {resp.status_code}: {resp.text[:200]}"
    if not isinstance(body, dict):
        return f"HTTP {resp.status_code}: {body}"
    line = f"HTTP {resp.status_code} {body.get('code') or body.get('title', '')}: {body.get('detail', '')}"
    for e in body.get("errors") or []:
        line += f"; {e.get('pointer', '')} {e.get('message', '')}"
    if resp.status_code == 401:
        line += " (LODESTONE_TOKEN was refused: mint a fresh one)"
    return line


def api_client(timeout: float | None = 30) -> httpx.Client:
    """An HTTP client for the API at LODESTONE_API_URL (default http://127.0.0.1:API_PORT)
    with LODESTONE_TOKEN as the bearer."""
    settings = get_settings()
    if not settings.lodestone_token:
        _exit(
            "LODESTONE_TOKEN is not set: set it to a bearer token for the API (under the dev stack, "
            "`lodestone token --tenant TENANT_ID --role editor` mints one)"
        )
    base = (settings.lodestone_api_url or f"http://127.0.0.1:{settings.api_port}").rstrip("/")
    headers = {"Authorization": f"Bearer {settings.lodestone_token}"}
    return httpx.Client(base_url=base, headers=headers, timeout=httpx.Timeout(timeout, connect=10))


def _call(http: httpx.Client, method: str, path: str, **kw: Any) -> Any:
    try:
        resp = http.request(method, path, **kw)
    except httpx.TransportError as e:
        _exit(f"cannot reach the API at {http.base_url} ({e or type(e).__name__}); is it running? (LODESTONE_API_URL)")
    if resp.status_code >= 400:
        _exit(_problem(resp))
    return resp.json()


def _out(*fields: object) -> None:
    sys.stdout.write("\t".join("-" if f is None else str(f) for f in fields) + "\n")


def _input(raw: str | None, path: Path | None) -> Any:
    if raw is not None and path is not None:
        _exit("give --input or --input-file, not both")
    try:
        text = path.read_text() if path is not None else raw
    except OSError as e:
        _exit(f"cannot read {path}: {e.strerror}")
    if text is None:
        return {}
    try:
        return json.loads(text)
    except ValueError as e:
        _exit(f"the input is not JSON: {e}")


def watch_job(http: httpx.Client, job_id: str, view: View) -> str:
    """Shows the job's events until its `end` event; returns the status it ended with."""
    final = ""
    try:
        for event in follow(
            http,
            f"/v1/jobs/{job_id}/events",
            until=lambda e: e.type == "end",
            on_reconnect=lambda last, why: note(f"reconnecting after event {last or '-'}: {why}"),
        ):
            data = event.json()
            view.show(event.type, data)
            if event.type == "end":
                final = str(data.get("status", ""))
    except StreamError as e:
        _exit(_problem(e.response))
    except StreamLost as e:
        _exit(f"lost the event stream: {e}")
    except KeyboardInterrupt:
        raise typer.Exit(130) from None  # Ctrl-C: the job goes on; watch it again any time
    finally:
        view.close()
    return final


def _watch_and_exit(http: httpx.Client, job_id: str) -> NoReturn:
    final = watch_job(http, job_id, view_for(str(http.base_url).rstrip("/")))
    raise typer.Exit(0 if final in SUCCESS else 1)


@jobs_app.command("submit")
def submit_cmd(
    workflow_key: Annotated[str, typer.Argument(help="the workflow definition's key")],
    input_json: Annotated[str | None, typer.Option("--input", help="the input as JSON")] = None,
    input_file: Annotated[Path | None, typer.Option("--input-file", help="a JSON file with the input")] = None,
    idempotency_key: Annotated[str | None, typer.Option(help="resubmitting with it returns the same job")] = None,
    watch: Annotated[bool, typer.Option("--watch", help="then watch the job until it ends")] = False,
) -> None:
    """Submit a job; prints its id and status (then, with --watch, its events)."""
    body = {"workflow_key": workflow_key, "input": _input(input_json, input_file)}
    headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
    with api_client() as http:
        accepted = _call(http, "POST", "/v1/submissions", json=body, headers=headers)
        _out(accepted["job_id"], accepted["status"])
        if watch:
            sys.stdout.flush()
            _watch_and_exit(http, accepted["job_id"])


@jobs_app.command("watch")
def watch_cmd(job_id: JobId) -> None:
    """Follow a job live until it ends; exit 0 if delivered or succeeded, 1 if failed or cancelled."""
    with api_client() as http:
        _watch_and_exit(http, str(job_id))


@jobs_app.command("get")
def get_cmd(
    job_id: JobId, as_json: Annotated[bool, typer.Option("--json", help="the API's JSON as is")] = False
) -> None:
    """One job: status, error, steps, artifacts and deliveries."""
    with api_client() as http:
        job = _call(http, "GET", f"/v1/jobs/{job_id}")
    if as_json:
        sys.stdout.write(json.dumps(job, indent=2) + "\n")
        return
    for key in ("id", "workflow_key", "kind", "status", "created_at", "updated_at"):
        _out(f"{key}:", job.get(key))
    if job.get("error"):
        _out("error:", job["error"].get("code"), job["error"].get("failed_step"), job["error"].get("message"))
    for s in job.get("steps") or []:
        _out("step:", s["id"], s["status"], f"attempts={s['attempts']}", s.get("error"))
    for a in job.get("artifacts") or []:
        _out("artifact:", a["id"], a["kind"], a["url"])
    for d in job.get("deliveries") or []:
        _out("delivery:", d["kind"], d["target"], d["status"], f"attempts={d['attempts']}", d.get("error"))


@jobs_app.command("list")
def list_cmd(
    status: Annotated[str | None, typer.Option(help="only jobs in this status")] = None,
    workflow_key: Annotated[str | None, typer.Option(help="only this workflow's jobs")] = None,
    limit: Annotated[int, typer.Option(min=1, max=200)] = 50,
    cursor: Annotated[str | None, typer.Option(help="the next page (printed to stderr after a full page)")] = None,
) -> None:
    """The tenant's jobs, newest first: id, status, workflow key, created at."""
    params = {k: v for k, v in {"status": status, "workflow_key": workflow_key, "cursor": cursor}.items() if v}
    with api_client() as http:
        page = _call(http, "GET", "/v1/jobs", params=params | {"limit": limit})
    for j in page["items"]:
        _out(j["id"], j["status"], j["workflow_key"], j["created_at"])
    if page.get("next_cursor"):
        note(f"next page: --cursor {page['next_cursor']}")
