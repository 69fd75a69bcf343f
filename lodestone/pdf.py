"""HTML to PDF with WeasyPrint, in a child process with time and memory caps.

The child reads HTML on stdin and writes the PDF to stdout. It may fetch nothing but
data: URIs, so a template cannot pull in local files or reach the network.
"""

import asyncio
import resource
import sys
from collections.abc import Callable


class PdfRenderFailed(RuntimeError):
    """The renderer crashed, ran out of memory or ran out of time."""


def _limit_memory(mb: int) -> Callable[[], None]:
    def apply() -> None:
        cap = mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))

    return apply


async def render_pdf(html: bytes, *, timeout: float, memory_mb: int) -> bytes:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "lodestone.pdf",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        preexec_fn=_limit_memory(memory_mb),
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(html), timeout)
    except TimeoutError:
        await _kill(proc)
        raise PdfRenderFailed(f"PDF rendering took longer than {timeout:.0f}s and was killed") from None
    except asyncio.CancelledError:  # the render was cancelled (its job was): the child goes with it
        await asyncio.shield(_kill(proc))
        raise
    if proc.returncode != 0 or not out.startswith(b"%PDF"):
        tail = err.decode(errors="replace").strip().splitlines()[-1:] or ["no output"]
        raise PdfRenderFailed(f"PDF renderer exited with {proc.returncode}: {tail[0][:500]}")
    return out


async def _kill(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        proc.kill()
    await proc.wait()


def _main() -> None:
    from weasyprint import HTML
    from weasyprint.urls import URLFetcher

    html = sys.stdin.buffer.read().decode()
    fetcher = URLFetcher(allowed_protocols={"data"})
    sys.stdout.buffer.write(HTML(string=html, url_fetcher=fetcher).write_pdf())


if __name__ == "__main__":
    _main()
