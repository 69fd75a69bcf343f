"""Artifacts, streamed from object storage with single-range Range support."""

import re
import uuid

from fastapi import APIRouter, Header
from fastapi.responses import StreamingResponse

from api.deps import SessionDep, StateDep, Viewer
from api.problems import Problem, not_found
from schema.tables import Artifact

router = APIRouter(prefix="/v1/artifacts", tags=["artifacts"])
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def parse_range(header: str, size: int) -> tuple[int, int]:
    match = _RANGE.match(header.strip())
    if not match or match.groups() == ("", ""):
        raise Problem(416, "range_not_satisfiable", f"unsupported Range {header!r}",
                      headers={"Content-Range": f"bytes */{size}"})
    first, last = match.groups()
    if first == "":
        start, end = max(size - int(last), 0), size - 1
    else:
        start, end = int(first), min(int(last), size - 1) if last else size - 1
    if start >= size or start > end:
        raise Problem(416, "range_not_satisfiable", f"Range {header!r} is outside 0-{size - 1}",
                      headers={"Content-Range": f"bytes */{size}"})
    return start, end


@router.get("/{artifact_id}", response_class=StreamingResponse,
            responses={200: {"content": {"application/octet-stream": {}}}, 206: {}, 416: {}})
async def get_artifact(artifact_id: uuid.UUID, _: Viewer, session: SessionDep, state: StateDep,
                       range: str | None = Header(default=None)) -> StreamingResponse:  # noqa: A002
    artifact = await session.get(Artifact, artifact_id)
    if artifact is None:
        raise not_found("artifact", artifact_id)
    size = artifact.size
    headers = {"Accept-Ranges": "bytes", "ETag": f'"{artifact.sha256}"'}
    if range is None:
        start, end, status = 0, size - 1, 200
    else:
        start, end = parse_range(range, size)
        status = 206
        headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    headers["Content-Length"] = str(end - start + 1)
    return StreamingResponse(state.store.iter_range(artifact.key, start, end), status_code=status,
                             media_type=artifact.content_type, headers=headers)
