"""GET /metrics: Prometheus text, the API's own metrics and its Temporal client's; series
labelled with a tenant_id only for a bearer METRICS_TOKEN."""

from fastapi import APIRouter, Request, Response

from api.deps import StateDep
from lodestone.metrics import bearer_matches, render

router = APIRouter(tags=["operations"])


@router.get("/metrics", include_in_schema=False)
async def get_metrics(request: Request, state: StateDep) -> Response:
    tenants = bearer_matches(request.headers.get("authorization"), state.settings.metrics_token)
    body, content_type = await render(request.app.state.sdk_metrics, state.http, tenants)
    return Response(body, media_type=content_type)
