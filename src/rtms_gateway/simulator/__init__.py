"""Zoom's side of RTMS for development, tests and load: signed webhooks, signaling and
media servers over TLS with a throwaway CA, scripted meetings paced at real rate."""

from .records import DeliveryRecord, HandshakeRecord, MeetingRecord, SentCounts
from .runner import (
    MeetingHandle,
    SimulationConfig,
    SimulationSummary,
    Simulator,
    SimulatorConfig,
    run_simulation,
)
from .scenario import MeetingScript, Speaker, Utterance, build_meeting, build_meetings

__all__ = [
    "DeliveryRecord",
    "HandshakeRecord",
    "MeetingHandle",
    "MeetingRecord",
    "MeetingScript",
    "SentCounts",
    "SimulationConfig",
    "SimulationSummary",
    "Simulator",
    "SimulatorConfig",
    "Speaker",
    "Utterance",
    "build_meeting",
    "build_meetings",
    "run_simulation",
]
