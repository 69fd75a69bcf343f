"""GET /metrics: Prometheus text, the API's own metrics and its Temporal client's."""

from fastapi import APIRouter, Request, Response

from api.deps import StateDep
from lodestone.metrics import render

router = APIRouter(tags=["operations"])


@router.get("/metrics", include_in_schema=False)
async def get_metrics(request: Request, state: StateDep) -> Response:
    body, content_type = await render(request.app.state.sdk_metrics, state.http)
    return Response(body, media_type=content_type)
