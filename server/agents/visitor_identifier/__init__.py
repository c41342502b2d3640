"""VisitorIdentifier: anonymous visitors, identity stitching, returning visitors, duplicates.

The rules live in `agent.py` and `server/domain/identity.py`; every statement in
`server/storage/identities.py`."""

from server.agents.visitor_identifier.agent import TrackResult, VisitorEventInput, VisitorIdentifier

__all__ = ["TrackResult", "VisitorEventInput", "VisitorIdentifier"]
