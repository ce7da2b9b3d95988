"""rtms-gateway: Zoom Realtime Media Streams in, durable queryable live data out."""

__version__ = "0.1.0"
