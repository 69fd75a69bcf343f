"""How `lodestone jobs watch` shows a job's events: one line per step, state, artifact,
delivery and status; the LLM's tokens as they arrive. On a terminal the running steps'
tokens stay in a live area under the lines; otherwise (a pipe, a file) everything is plain
text written once, the tokens inline under their step."""

import sys
import textwrap
from datetime import datetime
from typing import Any, Protocol, TextIO

from rich.console import Console, Group
from rich.live import Live
from rich.text import Text

STYLES = {"completed": "green", "succeeded": "green", "delivered": "green", "entered": "cyan", "started": "cyan"}
STYLES |= {"retrying": "yellow", "failed": "red", "cancelled": "red"}


def _at(value: str | None) -> str:
    if not value:
        return "-"
    try:
        return datetime.fromisoformat(value).astimezone().strftime("%H:%M:%S")
    except ValueError:
        return value


def _outcome(data: dict[str, Any]) -> str:
    """`(attempt N)` and, when there is one, the error."""
    attempt = f" (attempt {data['attempt']})" if data.get("attempt") is not None else ""
    return attempt + (f": {data['error']}" if data.get("error") else "")


def describe(kind: str, data: dict[str, Any], api_url: str) -> str:
    """One line for an event that is not a token."""
    status = data.get("status", "")
    if kind == "step" or kind == "state":
        name = f"step {data.get('step')}" if kind == "step" else f"state {data.get('path') or data.get('state')}"
        line = f"{name} {status}"
        if status in ("started", "entered"):
            return line + (f" (attempt {data['attempt']})" if (data.get("attempt") or 1) > 1 else "")
        if status in ("retrying", "failed"):
            line += _outcome(data)
        if status == "retrying" and data.get("next_attempt_at"):
            line += f"; next attempt at {_at(data['next_attempt_at'])}"
        return line
    if kind == "artifact":
        url = str(data.get("url", ""))
        return f"artifact {data.get('artifact_id')} {data.get('kind')} {api_url + url if url.startswith('/') else url}"
    if kind == "delivery":
        http = f" (HTTP {data['http_status']})" if data.get("http_status") else ""
        error = f": {data['error']}" if data.get("error") else ""
        return f"delivery {data.get('target')} attempt {data.get('attempt')} {status}{http}{error}"
    if kind in ("status", "end"):
        return f"{'job' if kind == 'end' else 'status'} {status}" + (f": {data['error']}" if data.get("error") else "")
    return f"{kind} {data}"


def _token_key(data: dict[str, Any]) -> str:
    attempt = data.get("attempt") or 1
    return f"{data.get('step')}" + (f" (attempt {attempt})" if attempt > 1 else "")


def _ends_tokens(kind: str, data: dict[str, Any]) -> str | None:
    """The step or state whose token stream this event closes, if any."""
    if kind == "step" and data.get("status") in ("completed", "failed", "retrying"):
        return str(data.get("step"))
    if kind == "state" and data.get("status") in ("succeeded", "failed", "retrying"):
        return str(data.get("path") or data.get("state"))
    return None


class View(Protocol):
    def show(self, kind: str, data: dict[str, Any]) -> None: ...

    def close(self) -> None: ...


class PlainView:
    """Plain lines; a step's tokens follow `  <step> › ` and continue on that line while
    the same step keeps streaming, with newlines in the text indented under it."""

    def __init__(self, api_url: str, out: TextIO | None = None) -> None:
        self.api_url, self.out = api_url, out or sys.stdout
        self.streaming: str | None = None  # the step whose tokens the open line shows

    def show(self, kind: str, data: dict[str, Any]) -> None:
        if kind == "token":
            key = _token_key(data)
            if key != self.streaming:
                self._end_tokens()
                self.out.write(f"  {key} › ")
                self.streaming = key
            self.out.write(str(data.get("text", "")).replace("\n", "\n" + " " * (len(key) + 5)))
        else:
            self._end_tokens()
            self.out.write(describe(kind, data, self.api_url) + "\n")
        self.out.flush()

    def _end_tokens(self) -> None:
        if self.streaming is not None:
            self.out.write("\n")
            self.streaming = None

    def close(self) -> None:
        self._end_tokens()
        self.out.flush()


class LiveView:
    """Lines printed above a live area that shows each running step's latest tokens."""

    TAIL_LINES = 3

    def __init__(self, api_url: str, console: Console | None = None) -> None:
        self.api_url = api_url
        self.console = console or Console(highlight=False)
        self.running: dict[str, str] = {}  # token key -> the text so far
        self.live = Live(self._area(), console=self.console, auto_refresh=True, refresh_per_second=12, transient=True)
        self.live.start()

    def _area(self) -> Group:
        width = max(self.console.width - 4, 20)
        parts: list[Text] = []
        for key, text in self.running.items():
            lines = [w for line in text[-width * self.TAIL_LINES :].splitlines() for w in textwrap.wrap(line, width)]
            parts.append(Text(f"▸ {key}", style="bold cyan"))
            parts += [Text("  " + line, style="dim", no_wrap=True) for line in lines[-self.TAIL_LINES :]]
        return Group(*parts)

    def show(self, kind: str, data: dict[str, Any]) -> None:
        if kind == "token":
            key = _token_key(data)
            self.running[key] = self.running.get(key, "") + str(data.get("text", ""))
        else:
            ended = _ends_tokens(kind, data)
            if ended is not None:
                self.running = {k: v for k, v in self.running.items() if k != ended and not k.startswith(ended + " (")}
            if kind == "end":
                self.running.clear()
            line = describe(kind, data, self.api_url)
            self.live.console.print(Text(line, style=STYLES.get(str(data.get("status")), "")), soft_wrap=True)
        self.live.update(self._area())

    def close(self) -> None:
        self.live.stop()


def view_for(api_url: str) -> View:
    return LiveView(api_url) if sys.stdout.isatty() else PlainView(api_url)
