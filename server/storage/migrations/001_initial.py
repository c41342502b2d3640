"""Peewee migrations -- 001_initial.py.

Some examples (model - class or model name)::

    > Model = migrator.orm['table_name']            # Return model in current state by name
    > Model = migrator.ModelClass                   # Return model in current state by name

    > migrator.sql(sql)                             # Run custom SQL
    > migrator.run(func, *args, **kwargs)           # Run python function with the given args
    > migrator.create_model(Model)                  # Create a model (could be used as decorator)
    > migrator.remove_model(model, cascade=True)    # Remove a model
    > migrator.add_fields(model, **fields)          # Add fields (allow_not_null=True skips default)
    > migrator.change_fields(model, **fields)       # Change fields
    > migrator.remove_fields(model, *field_names, cascade=True)
    > migrator.rename_field(model, old_field_name, new_field_name)
    > migrator.rename_table(model, new_table_name)
    > migrator.add_index(model, *col_names, unique=False)
    > migrator.add_not_null(model, *field_names)
    > migrator.add_default(model, field_name, default)
    > migrator.add_constraint(model, name, sql)
    > migrator.drop_index(model, *col_names)
    > migrator.drop_not_null(model, *field_names)
    > migrator.drop_constraints(model, *constraints)

"""

from contextlib import suppress

import peewee as pw
from peewee_migrate import Migrator


with suppress(ImportError):
    import playhouse.postgres_ext as pw_pext


def migrate(migrator: Migrator, database: pw.Database, *, fake=False):
    """Write your migrations here."""
    
    @migrator.create_model
    class Identity(pw.Model):
        id = pw.CharField(max_length=36, primary_key=True)
        created_at = pw.DateTimeField()
        updated_at = pw.DateTimeField()

        class Meta:
            table_name = "identity"

    @migrator.create_model
    class Visitor(pw.Model):
        id = pw.CharField(max_length=36, primary_key=True)
        anonymous_id = pw.CharField(max_length=128, unique=True)
        identity = pw.ForeignKeyField(column_name='identity_id', field='id', model=migrator.orm['identity'], null=True, on_delete='SET NULL')
        first_seen_at = pw.DateTimeField()
        last_seen_at = pw.DateTimeField()
        event_count = pw.IntegerField(default=0)

        class Meta:
            table_name = "visitor"

    @migrator.create_model
    class Dealer(pw.Model):
        id = pw.CharField(max_length=36, primary_key=True)
        name = pw.CharField(max_length=200)
        states_json = pw.TextField(default='[]')
        zip_prefixes_json = pw.TextField(default='[]')
        accepted_tiers_json = pw.TextField(default='[]')
        daily_cap = pw.IntegerField(default=0)
        priority = pw.IntegerField(default=100)
        weight = pw.IntegerField(default=1)
        endpoint_url = pw.TextField(default='')
        delivery_format = pw.CharField(default='json', max_length=8)
        signing_secret = pw.TextField(null=True)
        active = pw.BooleanField(default=True, index=True)
        created_at = pw.DateTimeField()
        updated_at = pw.DateTimeField()

        class Meta:
            table_name = "dealer"

    @migrator.create_model
    class Lead(pw.Model):
        id = pw.CharField(max_length=36, primary_key=True)
        status = pw.CharField(index=True, max_length=32)
        outcome = pw.CharField(max_length=16)
        reason = pw.TextField(default='')
        source = pw.CharField(index=True, max_length=64)
        identity = pw.ForeignKeyField(column_name='identity_id', field='id', model=migrator.orm['identity'], null=True, on_delete='SET NULL')
        visitor = pw.ForeignKeyField(column_name='visitor_id', field='id', model=migrator.orm['visitor'], null=True, on_delete='SET NULL')
        visitor_anonymous_id = pw.CharField(default='', max_length=128)
        duplicate_of = pw.ForeignKeyField(column_name='duplicate_of_id', field='id', model='self', null=True, on_delete='SET NULL')
        dealer = pw.ForeignKeyField(column_name='dealer_id', field='id', model=migrator.orm['dealer'], null=True, on_delete='SET NULL')
        source_dealer = pw.ForeignKeyField(column_name='source_dealer_id', field='id', model=migrator.orm['dealer'], null=True, on_delete='SET NULL')
        score = pw.IntegerField(default=0)
        delivery_state = pw.CharField(default='', max_length=16)
        first_name = pw.CharField(max_length=100)
        last_name = pw.CharField(max_length=100)
        email = pw.CharField(max_length=320)
        email_normalized = pw.CharField(index=True, max_length=320)
        phone_e164 = pw.CharField(index=True, max_length=20)
        date_of_birth = pw.TextField()
        monthly_income_cents = pw.TextField()
        down_payment_cents = pw.BigIntegerField(default=0)
        street = pw.CharField(max_length=200)
        street2 = pw.CharField(default='', max_length=200)
        city = pw.CharField(max_length=100)
        state = pw.CharField(max_length=2)
        zip_code = pw.CharField(max_length=10)
        vehicle_year = pw.IntegerField(default=0)
        vehicle_make = pw.CharField(default='', max_length=64)
        vehicle_model = pw.CharField(default='', max_length=64)
        vehicle_trim = pw.CharField(default='', max_length=64)
        vehicle_vin = pw.CharField(default='', max_length=17)
        vehicle_price_cents = pw.BigIntegerField(default=0)
        employment_status = pw.CharField(default='', max_length=32)
        months_employed = pw.IntegerField(default=0)
        months_at_address = pw.IntegerField(default=0)
        created_at = pw.DateTimeField(index=True)
        updated_at = pw.DateTimeField()

        class Meta:
            table_name = "lead"

    @migrator.create_model
    class Activity(pw.Model):
        id = pw.BigAutoField()
        lead = pw.ForeignKeyField(column_name='lead_id', field='id', model=migrator.orm['lead'], on_delete='CASCADE')
        agent = pw.CharField(max_length=32)
        kind = pw.CharField(max_length=64)
        summary = pw.TextField(default='')
        details_json = pw.TextField(default='{}')
        created_at = pw.DateTimeField(index=True)

        class Meta:
            table_name = "activity"

    @migrator.create_model
    class ApiKey(pw.Model):
        id = pw.CharField(max_length=32, primary_key=True)
        name = pw.CharField(default='', max_length=200)
        role = pw.CharField(max_length=16)
        dealer = pw.ForeignKeyField(column_name='dealer_id', field='id', model=migrator.orm['dealer'], null=True, on_delete='CASCADE')
        secret_hash = pw.CharField(max_length=64)
        created_at = pw.DateTimeField()
        revoked_at = pw.DateTimeField(null=True)
        last_used_at = pw.DateTimeField(null=True)

        class Meta:
            table_name = "api_key"

    @migrator.create_model
    class EmailTemplate(pw.Model):
        id = pw.CharField(max_length=36, primary_key=True)
        name = pw.CharField(max_length=200)
        subject = pw.TextField()
        html_body = pw.TextField(default='')
        text_body = pw.TextField()
        created_at = pw.DateTimeField(index=True)

        class Meta:
            table_name = "email_template"

    @migrator.create_model
    class Campaign(pw.Model):
        id = pw.CharField(max_length=36, primary_key=True)
        name = pw.CharField(max_length=200)
        kind = pw.CharField(max_length=16)
        template = pw.ForeignKeyField(column_name='template_id', field='id', model=migrator.orm['email_template'], null=True)
        steps_json = pw.TextField(default='[]')
        audience_json = pw.TextField(default='{}')
        state = pw.CharField(max_length=16)
        created_at = pw.DateTimeField(index=True)
        sent_at = pw.DateTimeField(null=True)

        class Meta:
            table_name = "campaign"

    @migrator.create_model
    class ChatSession(pw.Model):
        id = pw.CharField(max_length=36, primary_key=True)
        visitor_anonymous_id = pw.CharField(default='', max_length=128)
        lead = pw.ForeignKeyField(column_name='lead_id', field='id', model=migrator.orm['lead'], null=True, on_delete='SET NULL')
        state = pw.CharField(index=True, max_length=16)
        handoff_reason = pw.TextField(default='')
        started_at = pw.DateTimeField()
        ended_at = pw.DateTimeField(null=True)

        class Meta:
            table_name = "chat_session"

    @migrator.create_model
    class ChatMessage(pw.Model):
        id = pw.CharField(max_length=36, primary_key=True)
        session = pw.ForeignKeyField(column_name='session_id', field='id', model=migrator.orm['chat_session'], on_delete='CASCADE')
        sender = pw.CharField(max_length=16)
        text = pw.TextField()
        created_at = pw.DateTimeField()

        class Meta:
            table_name = "chat_message"

    @migrator.create_model
    class CreditCheck(pw.Model):
        id = pw.CharField(max_length=36, primary_key=True)
        lead = pw.ForeignKeyField(column_name='lead_id', field='id', model=migrator.orm['lead'], on_delete='CASCADE')
        source = pw.CharField(max_length=16)
        decision = pw.CharField(max_length=16)
        tier = pw.CharField(default='', max_length=8)
        score_band = pw.CharField(default='', max_length=16)
        max_payment_cents = pw.BigIntegerField(default=0)
        max_amount_cents = pw.BigIntegerField(default=0)
        reference_id = pw.CharField(default='', max_length=128)
        created_at = pw.DateTimeField(index=True)

        class Meta:
            table_name = "credit_check"

    @migrator.create_model
    class DealerEvent(pw.Model):
        id = pw.BigAutoField()
        dealer = pw.ForeignKeyField(column_name='dealer_id', field='id', model=migrator.orm['dealer'], on_delete='CASCADE')
        event_id = pw.CharField(max_length=128)
        event_type = pw.CharField(max_length=16)
        result = pw.CharField(max_length=16)
        reason = pw.TextField(default='')
        lead = pw.ForeignKeyField(column_name='lead_id', field='id', model=migrator.orm['lead'], null=True, on_delete='SET NULL')
        created_at = pw.DateTimeField()

        class Meta:
            table_name = "dealer_event"
            indexes = [(('dealer', 'event_id'), True)]

    @migrator.create_model
    class LeadPackage(pw.Model):
        id = pw.CharField(max_length=36, primary_key=True)
        lead = pw.ForeignKeyField(column_name='lead_id', field='id', model=migrator.orm['lead'], on_delete='CASCADE')
        dealer = pw.ForeignKeyField(column_name='dealer_id', field='id', model=migrator.orm['dealer'], on_delete='CASCADE')
        format = pw.CharField(max_length=8)
        content_type = pw.CharField(max_length=64)
        body = pw.TextField()
        created_at = pw.DateTimeField()

        class Meta:
            table_name = "lead_package"

    @migrator.create_model
    class Delivery(pw.Model):
        id = pw.CharField(max_length=36, primary_key=True)
        event_id = pw.CharField(max_length=64, unique=True)
        package = pw.ForeignKeyField(column_name='package_id', field='id', model=migrator.orm['lead_package'], on_delete='CASCADE')
        lead = pw.ForeignKeyField(column_name='lead_id', field='id', model=migrator.orm['lead'], on_delete='CASCADE')
        dealer = pw.ForeignKeyField(column_name='dealer_id', field='id', model=migrator.orm['dealer'], on_delete='CASCADE')
        state = pw.CharField(max_length=16)
        attempts = pw.IntegerField(default=0)
        next_attempt_at = pw.DateTimeField()
        locked_by = pw.CharField(default='', max_length=64)
        locked_until = pw.DateTimeField(null=True)
        last_status_code = pw.IntegerField(default=0)
        last_error = pw.TextField(default='')
        delivered_at = pw.DateTimeField(null=True)
        created_at = pw.DateTimeField()
        updated_at = pw.DateTimeField()

        class Meta:
            table_name = "delivery"
            indexes = [(('state', 'next_attempt_at'), False)]

    @migrator.create_model
    class DeliveryAttempt(pw.Model):
        id = pw.BigAutoField()
        delivery = pw.ForeignKeyField(column_name='delivery_id', field='id', model=migrator.orm['delivery'], on_delete='CASCADE')
        attempted_at = pw.DateTimeField()
        status_code = pw.IntegerField(default=0)
        error = pw.TextField(default='')
        duration_ms = pw.IntegerField(default=0)

        class Meta:
            table_name = "delivery_attempt"

    @migrator.create_model
    class EmailMessage(pw.Model):
        id = pw.CharField(max_length=36, primary_key=True)
        campaign = pw.ForeignKeyField(column_name='campaign_id', field='id', model=migrator.orm['campaign'], null=True, on_delete='CASCADE')
        lead = pw.ForeignKeyField(column_name='lead_id', field='id', model=migrator.orm['lead'], null=True, on_delete='SET NULL')
        template = pw.ForeignKeyField(column_name='template_id', field='id', model=migrator.orm['email_template'], null=True)
        step_index = pw.IntegerField(default=0)
        to_email = pw.CharField(max_length=320)
        state = pw.CharField(index=True, max_length=16)
        attempts = pw.IntegerField(default=0)
        next_attempt_at = pw.DateTimeField()
        locked_by = pw.CharField(default='', max_length=64)
        locked_until = pw.DateTimeField(null=True)
        provider_message_id = pw.CharField(default='', index=True, max_length=255)
        last_error = pw.TextField(default='')
        sent_at = pw.DateTimeField(null=True)
        delivered_at = pw.DateTimeField(null=True)
        opened_at = pw.DateTimeField(null=True)
        clicked_at = pw.DateTimeField(null=True)
        created_at = pw.DateTimeField()
        updated_at = pw.DateTimeField()

        class Meta:
            table_name = "email_message"
            indexes = [(('campaign', 'lead', 'step_index'), True)]

    @migrator.create_model
    class IdempotencyRecord(pw.Model):
        id = pw.AutoField()
        scope = pw.CharField(max_length=128)
        key = pw.CharField(max_length=128)
        request_hash = pw.CharField(max_length=64)
        response_json = pw.TextField()
        lead = pw.ForeignKeyField(column_name='lead_id', field='id', model=migrator.orm['lead'], null=True, on_delete='CASCADE')
        created_at = pw.DateTimeField(index=True)

        class Meta:
            table_name = "idempotency_record"
            indexes = [(('scope', 'key'), True)]

    @migrator.create_model
    class IdentityIdentifier(pw.Model):
        id = pw.AutoField()
        identity = pw.ForeignKeyField(column_name='identity_id', field='id', model=migrator.orm['identity'], on_delete='CASCADE')
        kind = pw.CharField(max_length=8)
        value = pw.CharField(max_length=320)
        created_at = pw.DateTimeField()

        class Meta:
            table_name = "identity_identifier"
            indexes = [(('kind', 'value'), True)]

    @migrator.create_model
    class LeadConsent(pw.Model):
        id = pw.AutoField()
        lead = pw.ForeignKeyField(column_name='lead_id', field='id', model=migrator.orm['lead'], on_delete='CASCADE')
        kind = pw.CharField(max_length=16)
        granted = pw.BooleanField()
        consent_text = pw.TextField()
        consented_at = pw.DateTimeField()
        ip_address = pw.CharField(default='', max_length=64)
        user_agent = pw.TextField(default='')
        page_url = pw.TextField(default='')
        certificate_id = pw.CharField(default='', max_length=200)
        created_at = pw.DateTimeField()

        class Meta:
            table_name = "lead_consent"
            indexes = [(('lead', 'kind'), True)]

    @migrator.create_model
    class Suppression(pw.Model):
        id = pw.AutoField()
        email_normalized = pw.CharField(max_length=320, unique=True)
        reason = pw.CharField(max_length=16)
        created_at = pw.DateTimeField()

        class Meta:
            table_name = "suppression"

    @migrator.create_model
    class VisitorEvent(pw.Model):
        id = pw.BigAutoField()
        visitor = pw.ForeignKeyField(column_name='visitor_id', field='id', model=migrator.orm['visitor'], on_delete='CASCADE')
        event_id = pw.CharField(max_length=128, null=True)
        event_type = pw.CharField(max_length=32)
        page_url = pw.TextField(default='')
        page_path = pw.TextField(default='')
        referrer = pw.TextField(default='')
        page_title = pw.TextField(default='')
        utm_source = pw.CharField(default='', max_length=200)
        utm_medium = pw.CharField(default='', max_length=200)
        utm_campaign = pw.CharField(default='', max_length=200)
        utm_term = pw.CharField(default='', max_length=200)
        utm_content = pw.CharField(default='', max_length=200)
        user_agent = pw.TextField(default='')
        ip_address = pw.CharField(default='', max_length=64)
        step = pw.CharField(default='', max_length=64)
        client_time = pw.DateTimeField(null=True)
        occurred_at = pw.DateTimeField()
        received_at = pw.DateTimeField(index=True)
        privacy_opt_out = pw.BooleanField(default=False)

        class Meta:
            table_name = "visitor_event"
            indexes = [(('visitor', 'event_id'), True)]


def rollback(migrator: Migrator, database: pw.Database, *, fake=False):
    """Write your rollback migrations here."""
    
    migrator.remove_model('visitor_event')

    migrator.remove_model('suppression')

    migrator.remove_model('lead_consent')

    migrator.remove_model('identity_identifier')

    migrator.remove_model('idempotency_record')

    migrator.remove_model('email_message')

    migrator.remove_model('delivery_attempt')

    migrator.remove_model('delivery')

    migrator.remove_model('lead_package')

    migrator.remove_model('dealer_event')

    migrator.remove_model('credit_check')

    migrator.remove_model('chat_message')

    migrator.remove_model('chat_session')

    migrator.remove_model('campaign')

    migrator.remove_model('email_template')

    migrator.remove_model('api_key')

    migrator.remove_model('activity')

    migrator.remove_model('lead')

    migrator.remove_model('dealer')

    migrator.remove_model('visitor')

    migrator.remove_model('identity')
