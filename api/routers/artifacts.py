"""Artifacts, streamed from object storage with single-range Range support, and signed,
expiring links that download one artifact without a bearer token."""

import mimetypes
import re
import uuid
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Header, Query
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

from api.deps import SessionDep, StateDep, Viewer
from api.problems import AUTHENTICATED, Problem, responses
from lodestone import links
from lodestone.storage import ObjectStore
from schema.tables import Artifact
from services import artifacts

router = APIRouter(prefix="/v1/artifacts", tags=["artifacts"])
_RANGE = re.compile(r"^bytes=([0-9]*)-([0-9]*)$")  # ASCII digits only, as RFC 9110 says
_PAST_ANY_END = 1 << 62
_BYTES = {"content": {"*/*": {"schema": {"type": "string", "format": "binary"}}}}  # the artifact's own type
_STREAMED = {
    200: {**_BYTES, "description": "the whole artifact (text/html, application/pdf, ...)"},
    206: {**_BYTES, "description": "the requested range"},
    **responses(404, 416, 422),
}
RangeHeader = Annotated[str | None, Header(alias="Range")]
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


class ArtifactLink(BaseModel):
    url: str
    expires_at: datetime


def _position(digits: str) -> int:
    # int() refuses more than 4300 digits; past 18 digits a position is past every object's end.
    digits = digits.lstrip("0") or "0"
    return int(digits) if len(digits) <= 18 else _PAST_ANY_END


def parse_range(header: str, size: int) -> tuple[int, int]:
    match = _RANGE.match(header.strip())
    if not match or match.groups() == ("", ""):
        raise Problem(
            416, "range_not_satisfiable", f"unsupported Range {header!r}", headers={"Content-Range": f"bytes */{size}"}
        )
    first, last = match.groups()
    if first == "":
        start, end = max(size - _position(last), 0), size - 1
    else:
        start, end = _position(first), min(_position(last), size - 1) if last else size - 1
    if start >= size or start > end:
        raise Problem(
            416,
            "range_not_satisfiable",
            f"Range {header!r} is outside 0-{size - 1}",
            headers={"Content-Range": f"bytes */{size}"},
        )
    return start, end


def download_name(artifact: Artifact) -> str:
    """The file name a browser saves the artifact as: the stored object's own name
    (report.pdf, report.html), else its kind with the extension of its type, in characters
    that need no quoting in a header and make no path."""
    name = _UNSAFE.sub("_", artifact.key.rsplit("/", 1)[-1]).strip("._")
    if "." in name:
        return name
    stem = _UNSAFE.sub("_", name or artifact.kind).strip("._")[:100] or "artifact"
    extension = mimetypes.guess_extension(artifact.content_type.split(";")[0].strip()) or ""
    return f"{stem}{extension}"


def stream(
    artifact: Artifact, store: ObjectStore, range_header: str | None, extra_headers: dict[str, str] | None = None
) -> StreamingResponse:
    size = artifact.size
    headers = {
        "Accept-Ranges": "bytes",
        "ETag": f'"{artifact.sha256}"',
        "Content-Disposition": f'attachment; filename="{download_name(artifact)}"',
        **(extra_headers or {}),
    }
    if range_header is None:
        start, end, status = 0, size - 1, 200
    else:
        start, end = parse_range(range_header, size)
        status = 206
        headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    headers["Content-Length"] = str(end - start + 1)
    return StreamingResponse(
        store.iter_range(artifact.key, start, end),
        status_code=status,
        media_type=artifact.content_type,
        headers=headers,
    )


@router.get("/{artifact_id}", response_class=StreamingResponse, responses={**AUTHENTICATED, **_STREAMED})
async def get_artifact(
    artifact_id: uuid.UUID, _: Viewer, session: SessionDep, state: StateDep, range_header: RangeHeader = None
) -> StreamingResponse:
    return stream(await artifacts.get(session, artifact_id), state.store, range_header)


@router.get("/{artifact_id}/link", response_model=ArtifactLink, responses={**AUTHENTICATED, **responses(404, 422)})
async def get_artifact_link(
    artifact_id: uuid.UUID,
    principal: Viewer,
    session: SessionDep,
    state: StateDep,
    ttl_seconds: Annotated[int | None, Query(ge=1)] = None,
) -> ArtifactLink:
    settings = state.settings
    ttl = settings.link_default_ttl_seconds if ttl_seconds is None else ttl_seconds
    if ttl > settings.link_max_ttl_seconds:
        raise Problem(
            422,
            "validation_error",
            f"ttl_seconds must be at most {settings.link_max_ttl_seconds}",
            errors=[{"loc": ["query", "ttl_seconds"], "msg": "above the maximum link lifetime"}],
        )
    artifact = await artifacts.get(session, artifact_id)
    link = links.mint(links.signing_key(settings), artifact.id, principal.tenant_id, ttl)
    return ArtifactLink(
        url=links.download_url(settings.api_url, artifact.id, link),
        expires_at=datetime.fromtimestamp(link.expires, UTC),
    )


@router.get(
    "/{artifact_id}/download",
    response_class=StreamingResponse,
    responses={**_STREAMED, **responses(403, descriptions={403: "the link is not valid or has expired"})},
)
async def download_artifact(
    artifact_id: uuid.UUID,
    state: StateDep,
    range_header: RangeHeader = None,
    expires: str = "",
    tenant: str = "",
    sig: str = "",
) -> StreamingResponse:
    # No bearer token: the signature is the credential, so every failure looks the same.
    try:
        tenant_id = links.verify(
            links.signing_key(state.settings),
            artifact_id,
            tenant=tenant,
            expires=expires,
            sig=sig,
            max_ttl_seconds=state.settings.link_max_ttl_seconds,
        )
    except links.InvalidLink:
        raise Problem(403, "forbidden", "this link is not valid") from None
    artifact = await artifacts.linked(state.engine, tenant_id=tenant_id, artifact_id=artifact_id)
    return stream(artifact, state.store, range_header, {"Referrer-Policy": "no-referrer"})
