"""The orchestrator: a lead's way through the agents, with leases and the stopped-pipeline sweep
(`agent.py`)."""

from server.agents.orchestrator.agent import (
    ImportRecord,
    ImportRecordResult,
    Orchestrator,
    describe,
)

__all__ = ["ImportRecord", "ImportRecordResult", "Orchestrator", "describe"]
