"""Adapters to external systems (FlexPath, dealer CRMs, Mailgun, OpenAI): real HTTP clients that translate failures into domain errors."""
