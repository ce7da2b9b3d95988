"""Managing outbound webhooks (`sinks.outbox`): subscriptions, their deliveries, replay.
Admin keys only: a subscription's secret and its deliveries are the admin's business."""

from __future__ import annotations

import logging
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, HTTPException, Path, Query, Response

from ..sinks.keys import Scope
from ..sinks.outbox import EVENT_TYPES, Outbox, TooManySubscriptions, UnknownEventType
from ..sinks.webhook_targets import MAX_URL_CHARS, TargetRefused
from .auth import Authenticator

log = logging.getLogger(__name__)

_ID = Path(ge=1, le=2**31 - 1, description="The subscription's id")
_EVENTS_DOC = f"The event types to send: {', '.join(EVENT_TYPES)}"


def webhook_routes(outbox: Outbox, auth: Authenticator,
                   auth_errors: dict[int | str, dict[str, Any]]) -> APIRouter:
    router = APIRouter(dependencies=[Depends(auth.require(Scope.ADMIN))], responses=auth_errors)
    subscriptions = outbox.subscriptions

    async def subscription_or_404(subscription_id: int) -> None:
        if await subscriptions.get(subscription_id) is None:
            raise HTTPException(404, f"no webhook subscription {subscription_id}")

    @router.post("/api/webhooks", status_code=201,
                 summary="Subscribe a URL to events; the answer holds its secret, shown this once",
                 response_description="The subscription and its `secret` (`whsec_...`): keep it "
                                      "to verify the `webhook-signature` of each delivery",
                 responses={400: {"description": "A URL refused (not http(s), does not resolve, "
                                                 "or a private address), an unknown event type, "
                                                 "or too many subscriptions"}})
    async def add(url: Annotated[str, Body(min_length=1, max_length=MAX_URL_CHARS)],
                  events: Annotated[list[str], Body(min_length=1, max_length=len(EVENT_TYPES),
                                                    description=_EVENTS_DOC)]) -> dict[str, Any]:
        try:
            added = await outbox.add(url, events)
        except (TargetRefused, UnknownEventType, TooManySubscriptions) as exc:
            raise HTTPException(400, str(exc)) from None
        log.info("webhook subscription %d added (%s)", added.id, ",".join(added.events))
        return {**added.to_json(), "secret": added.secret}

    @router.get("/api/webhooks", summary="The webhook subscriptions (never their secrets)",
                response_description="`{\"webhooks\": [{id, url, events, position, created_at_ms}]}`; "
                                     "`position`: the cursor of the last item each is done with")
    async def listed() -> dict[str, Any]:
        return {"webhooks": [sub.to_json() for sub in await subscriptions.live()]}

    @router.delete("/api/webhooks/{subscription_id}", status_code=204,
                   summary="Stop sending to a subscription (its delivery history stays)",
                   responses={404: {"description": "No such subscription"}})
    async def remove(subscription_id: int = _ID) -> Response:
        if not await outbox.remove(subscription_id):
            raise HTTPException(404, f"no webhook subscription {subscription_id}")
        log.info("webhook subscription %d removed", subscription_id)
        return Response(status_code=204)

    @router.get("/api/webhooks/{subscription_id}/deliveries",
                summary="A subscription's deliveries, newest first: attempts, status, last error",
                response_description="`{\"deliveries\": [...], \"next\"}`; pass `next` as `before` "
                                     "for the following page",
                responses={404: {"description": "No such subscription"}})
    async def deliveries(subscription_id: int = _ID,
                         status: Literal["pending", "delivered", "dead"] | None = None,
                         before: Annotated[int | None, Query(ge=1, le=2**62)] = None,
                         limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> dict[str, Any]:
        await subscription_or_404(subscription_id)
        found = await subscriptions.deliveries(subscription_id, status=status, before=before,
                                               limit=limit)
        return {"deliveries": [d.to_json() for d in found],
                "next": found[-1].id if len(found) == limit else None}

    @router.post("/api/webhooks/{subscription_id}/deliveries/{delivery_id}/replay",
                 status_code=202, summary="Try a dead delivery again (a fresh retry window)",
                 response_description="The delivery, pending again",
                 responses={404: {"description": "No such subscription"},
                            409: {"description": "That delivery is not dead"}})
    async def replay(subscription_id: int = _ID,
                     delivery_id: int = Path(ge=1, le=2**62)) -> dict[str, Any]:
        await subscription_or_404(subscription_id)
        replayed = await subscriptions.replay(subscription_id, delivery_id)
        if replayed is None:
            raise HTTPException(409, f"subscription {subscription_id} has no dead delivery {delivery_id}")
        outbox.replayed(subscription_id)
        return replayed.to_json()

    return router
