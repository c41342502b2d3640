"""Peewee migrations -- 006_lead_vehicle_details.py.

Adds what a lead says about its vehicles and its timing, which the dealer package (ADF and
JSON) carries: whether the vehicle of interest is new or used, the purchase timeframe, and the
vehicle the applicant means to trade in (year, make, model, mileage). Existing leads get the
"not given" values ("" and 0).
"""

import peewee as pw
from peewee_migrate import Migrator


def migrate(migrator: Migrator, database: pw.Database, *, fake=False):
    migrator.add_fields(
        "lead",
        vehicle_status=pw.CharField(max_length=8, default=""),
        purchase_timeframe=pw.CharField(max_length=16, default=""),
        trade_in_year=pw.IntegerField(default=0),
        trade_in_make=pw.CharField(max_length=64, default=""),
        trade_in_model=pw.CharField(max_length=64, default=""),
        trade_in_mileage=pw.IntegerField(default=0),
    )


def rollback(migrator: Migrator, database: pw.Database, *, fake=False):
    migrator.remove_fields(
        "lead",
        "vehicle_status",
        "purchase_timeframe",
        "trade_in_year",
        "trade_in_make",
        "trade_in_model",
        "trade_in_mileage",
    )
