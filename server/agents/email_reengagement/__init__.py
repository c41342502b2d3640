"""EmailReengagement: bulk campaigns through Mailgun (issue 10). `EmailDispatcher` sends running
campaigns' queued messages in batches of up to 1,000, each rendered once with Mailgun
placeholders for the recipients' values (or records them in simulation mode without a Mailgun
key), honouring quiet hours. Not wired into the app yet: until it is, the campaign RPCs answer
UNIMPLEMENTED and the agent reports DISABLED. Not built: drip sequences and the cross-campaign
frequency cap."""

from server.agents.email_reengagement.dispatcher import (
    DispatchReport,
    EmailDispatcher,
    SenderDetails,
)

__all__ = ["DispatchReport", "EmailDispatcher", "SenderDetails"]
