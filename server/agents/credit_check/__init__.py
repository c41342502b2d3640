"""CreditCheck: the FlexPath soft pull, or the deterministic simulation (`agent.py`)."""

from server.agents.credit_check.agent import CreditCheckAgent, CreditOutcome

__all__ = ["CreditCheckAgent", "CreditOutcome"]
