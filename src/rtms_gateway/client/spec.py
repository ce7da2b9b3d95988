"""What a stream connects to: the facts of its `*.rtms_started` webhook, and which URL
each socket opens (TLS only, unless plain WebSockets are explicitly allowed)."""

from __future__ import annotations

from dataclasses import dataclass

from ..protocol.constants import MEDIA_KEY, SINGLE_MEDIA_TYPES, MediaType, Product
from ..protocol.errors import InsecureUrl


@dataclass(frozen=True, slots=True)
class StreamSpec:
    """What a `*.rtms_started` webhook tells us about a stream."""

    product: Product
    owner_id: str
    rtms_stream_id: str
    server_urls: str


def signaling_urls(server_urls: str) -> list[str]:
    """Zoom's `server_urls` is one string, comma-separated when there are several."""
    urls = [u.strip() for u in server_urls.split(",")]
    return [u for u in urls if u[:6].lower() == "wss://" or u[:5].lower() == "ws://"]


def is_tls(url: str) -> bool:
    return url[:6].lower() == "wss://"


def insecure_refusal(what: str, url: str) -> InsecureUrl:
    shown = url if len(url) <= 120 else url[:120] + "…"
    return InsecureUrl(f"{what} URL {shown} is not wss:// (TLS); refused "
                       "(RTMS_ALLOW_INSECURE_WS=true allows plain WebSockets)")


def plan_media_sockets(media: MediaType, urls: dict[str, str]) -> list[tuple[MediaType, str]]:
    """One socket per requested type at its own URL; types with no own URL share one
    socket at the `all` URL (unified mode)."""
    plan: list[tuple[MediaType, str]] = []
    unified = MediaType.UNDEFINED
    for kind in SINGLE_MEDIA_TYPES:
        if not kind & media:
            continue
        url = urls.get(MEDIA_KEY[kind])
        if url:
            plan.append((kind, url))
        else:
            unified |= kind
    if unified and urls.get("all"):
        plan.append((unified, urls["all"]))
    return plan


def media_key(kind: MediaType) -> str:
    return MEDIA_KEY.get(kind, str(int(kind)))
