"""The five agents and the orchestrator that coordinates them (one module each)."""
