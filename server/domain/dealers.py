"""Dealer domain types."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field


@dataclass
class DealerInput:
    """A dealer as created or updated by an admin (every field optional on update)."""

    name: str = ""
    states: list[str] = field(default_factory=list)
    zip_prefixes: list[str] = field(default_factory=list)
    accepted_tiers: list[str] = field(default_factory=list)
    daily_cap: int = 0
    priority: int = 100
    weight: int = 1
    endpoint_url: str = ""
    delivery_format: str = "json"
    signing_secret: str = ""
    active: bool = True


@dataclass(frozen=True)
class DealerRecord:
    dealer_id: str
    name: str
    states: list[str]
    zip_prefixes: list[str]
    accepted_tiers: list[str]
    daily_cap: int
    priority: int
    weight: int
    endpoint_url: str
    delivery_format: str
    signing_secret_set: bool
    active: bool
    created_at: dt.datetime
    updated_at: dt.datetime
