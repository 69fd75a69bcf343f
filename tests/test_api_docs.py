"""/docs and /redoc work offline: every script, style and icon they load comes from the API."""

import re
from urllib.parse import urljoin

import httpx
import pytest

# Where an HTML page or Swagger UI's setup script names a URL to load.
URL = re.compile(r"""(?:src|href|spec-url)="([^"]*)"|\burl: '([^']*)'""")
TYPES = {".js": "javascript", ".css": "text/css", ".png": "image/png", ".json": "application/json"}


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_pages_load_only_the_apis_own_urls(stack, settings, page):
    with httpx.Client(base_url=settings.api_url, timeout=30) as http:
        html = http.get(page)
        assert html.status_code == 200 and html.headers["content-type"].startswith("text/html"), html.text
        assert re.findall(r"(?:https?:)?//[\w.-]+", html.text) == [], html.text  # no CDN, no fonts, no badge
        urls = {a or b for a, b in URL.findall(html.text)}
        assert {"/openapi.json"} < urls, urls
        for url in urls:
            assert url.startswith("/") and not url.startswith("//"), url
            answer = http.get(urljoin(page, url))
            assert answer.status_code == 200, (url, answer.text[:200])
            kind = next(v for k, v in TYPES.items() if url.endswith(k))
            assert kind in answer.headers["content-type"] and len(answer.content) > 1000, (url, answer.headers)


def test_only_the_docs_assets_are_served(stack, settings):
    with httpx.Client(base_url=settings.api_url, timeout=30) as http:
        for name in ("core.py", "..%2F__init__.py", "nothing.js"):
            answer = http.get(f"/docs/assets/{name}")
            assert answer.status_code == 404, (name, answer.text)
            assert answer.headers["content-type"] == "application/problem+json"
        assert http.get("/docs/oauth2-redirect").status_code == 200
