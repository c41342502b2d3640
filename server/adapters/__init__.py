"""Adapters to external systems (FlexPath, dealer CRMs, Mailgun, OpenAI).

Real HTTP clients that translate what fails below them into domain errors."""
