"""EmailReengagement: bulk campaigns through Mailgun (issue 10). `EmailDispatcher` sends running
campaigns' queued messages in batches of up to 1,000, each rendered once with Mailgun
placeholders for the recipients' values (or records them in simulation mode without a Mailgun
key), honouring quiet hours. `CampaignLifecycle` (`campaigns.py`) creates, sends (now,
scheduled or as a dry run), pauses, resumes and cancels campaigns, and in each dispatcher turn
starts scheduled campaigns that fell due, completes drained ones and pauses one whose statistics
call for it. Not built: drip sequences and the cross-campaign frequency cap."""

from server.agents.email_reengagement.dispatcher import (
    DispatchReport,
    EmailDispatcher,
    SenderDetails,
)

__all__ = ["DispatchReport", "EmailDispatcher", "SenderDetails"]
