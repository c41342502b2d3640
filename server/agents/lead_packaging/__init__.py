"""LeadPackaging: score, route and render a lead's dealer package (`agent.py`), in ADF 1.0 XML or
JSON (`render.py`); the rules in `server/domain/scoring.py` and `server/domain/routing.py`."""

from server.agents.lead_packaging.agent import LeadPackaging

__all__ = ["LeadPackaging"]
