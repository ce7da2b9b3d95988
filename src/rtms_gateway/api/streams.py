"""Controlling the streams this gateway holds (`gateway.control`): close one, subscribe to a
participant's video. Admin keys only: these act on Zoom, not on stored data."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, HTTPException, Path

from ..client.control import Answer, NotHeld, NotReady, StreamControl, TooMany
from ..sinks.keys import Scope
from .auth import Authenticator

_STREAM = Path(min_length=1, max_length=1024, description="The stream's `rtms_stream_id`")
_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"description": "This gateway holds no such stream (never had it, or it ended)"},
    409: {"description": "The stream cannot take the request now (not ready, or closing)"},
    429: {"description": "Too many requests of this stream wait for Zoom's answer"},
    504: {"description": "Zoom did not answer in time"},
}


def stream_routes(control: StreamControl, auth: Authenticator,
                  auth_errors: dict[int | str, dict[str, Any]]) -> APIRouter:
    router = APIRouter(dependencies=[Depends(auth.require(Scope.ADMIN))],
                       responses={**auth_errors, **_ERRORS})

    @router.post("/api/streams/{rtms_stream_id}/close",
                 summary="Ask Zoom to end a stream (STREAM_CLOSE_REQ); it then stops with reason 20",
                 response_description="Zoom's answer: `{rtms_stream_id, status_code, status, "
                                      "reason, answered}`")
    async def close(rtms_stream_id: str = _STREAM) -> dict[str, Any]:
        return _answered(rtms_stream_id, await _run(control.close(rtms_stream_id)))

    @router.post("/api/streams/{rtms_stream_id}/video",
                 summary="Subscribe to (or leave) one participant's video (VIDEO_SUBSCRIPTION_REQ); "
                         "Zoom sends it with RTMS_VIDEO_STREAM=individual",
                 response_description="Zoom's answer: `{rtms_stream_id, user_id, subscribe, "
                                      "status_code, status, reason, answered}`")
    async def video(user_id: Annotated[int, Body(ge=0, le=2**32 - 1)],
                    subscribe: Annotated[bool, Body()] = True,
                    rtms_stream_id: str = _STREAM) -> dict[str, Any]:
        answer = await _run(control.video(rtms_stream_id, user_id, subscribe))
        return {**_answered(rtms_stream_id, answer), "user_id": user_id, "subscribe": subscribe}

    return router


async def _run(request: Any) -> Answer:
    try:
        answer: Answer = await request
    except NotHeld:
        raise HTTPException(404, "this gateway holds no such stream") from None
    except NotReady as exc:
        raise HTTPException(409, str(exc)) from None
    except TooMany as exc:
        raise HTTPException(429, str(exc)) from None
    return answer


def _answered(rtms_stream_id: str, answer: Answer) -> dict[str, Any]:
    if answer.status_code is None:
        raise HTTPException(504, answer.reason)
    return {"rtms_stream_id": rtms_stream_id, **answer.to_json()}
