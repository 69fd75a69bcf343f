"""Rendering: the Jinja2 sandbox, and WeasyPrint in a child process with caps and a
fetcher that reaches nothing but data: URIs."""

import base64
import io

import pypdf
import pytest

from lodestone.pdf import PdfRenderFailed, render_pdf
from lodestone.templating import TemplateRenderError, TemplateSecurityViolation, render

HTML = "<html><body><h1>Quarterly report</h1><p>{}</p></body></html>"


def pdf_text(data: bytes) -> str:
    return "\n".join(p.extract_text() for p in pypdf.PdfReader(io.BytesIO(data)).pages)


async def test_pdf_renders_text():
    data = await render_pdf(HTML.format("hello").encode(), timeout=60, memory_mb=1024)
    assert data.startswith(b"%PDF") and "Quarterly report" in pdf_text(data)


async def test_pdf_fetcher_reads_data_uris_but_not_files(tmp_path):
    css = "body::before { content: 'FROM-STYLESHEET'; }"
    (tmp_path / "leak.css").write_text(css)
    data_uri = "data:text/css;base64," + base64.b64encode(css.encode()).decode()
    allowed = f"<html><head><link rel=stylesheet href='{data_uri}'></head><body>x</body></html>"
    refused = f"<html><head><link rel=stylesheet href='file://{tmp_path}/leak.css'></head><body>x</body></html>"
    assert "FROM-STYLESHEET" in pdf_text(await render_pdf(allowed.encode(), timeout=60, memory_mb=1024))
    assert "FROM-STYLESHEET" not in pdf_text(await render_pdf(refused.encode(), timeout=60, memory_mb=1024))


async def test_pdf_time_cap_kills_the_child():
    huge = "<table>" + "<tr><td>cell</td></tr>" * 40000 + "</table>"
    with pytest.raises(PdfRenderFailed, match="longer than"):
        await render_pdf(HTML.format(huge).encode(), timeout=0.5, memory_mb=1024)


async def test_pdf_memory_cap_fails_cleanly():
    with pytest.raises(PdfRenderFailed, match="exited with"):
        await render_pdf(HTML.format("<p>x</p>" * 4000).encode(), timeout=60, memory_mb=40)
    # The parent is unharmed and renders the next document.
    assert (await render_pdf(HTML.format("after").encode(), timeout=60, memory_mb=1024)).startswith(b"%PDF")


@pytest.mark.parametrize(
    "source",
    [
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ cycler.__init__.__globals__ }}",
        "{{ input.__class__.__base__ }}",
    ],
)
def test_sandbox_blocks_escapes(source):
    with pytest.raises(TemplateSecurityViolation, match="unsafe"):
        render(source, {"input": {}}, html=True)


def test_sandbox_caps_huge_range():
    with pytest.raises(TemplateSecurityViolation):
        render("{% for i in range(10**9) %}{% endfor %}", {}, html=True)


def test_html_is_escaped_and_missing_variables_are_errors():
    assert render("{{ x }}", {"x": "<script>"}, html=True) == "&lt;script&gt;"
    assert "<p>a</p>" in render("{{ t | paragraphs }}", {"t": "a\n\nb"}, html=True)
    with pytest.raises(TemplateRenderError):
        render("{{ nope }}", {}, html=False)
