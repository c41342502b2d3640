"""EmailReengagement: campaigns through Mailgun (issue 10). `EmailDispatcher` sends running
campaigns' queued messages in batches of up to 1,000, each rendered once with Mailgun
placeholders for the recipients' values (or records them in simulation mode without a Mailgun
key), honouring quiet hours and the cross-campaign frequency cap, and sends the adverse-action
notices owed to declined applicants (transactional: one message each). `CampaignLifecycle`
(`campaigns.py`) creates, sends (now, scheduled or as a dry run), pauses, resumes and cancels
campaigns, one-off or drip sequences for abandoned applications, and in each dispatcher turn
starts scheduled campaigns that fell due, enrols abandoned applications into running drips and
queues their due steps, completes drained one-off campaigns and pauses one whose statistics call
for it."""

from server.agents.email_reengagement.dispatcher import (
    DispatchReport,
    EmailDispatcher,
    NoticeDetails,
    SenderDetails,
)

__all__ = ["DispatchReport", "EmailDispatcher", "NoticeDetails", "SenderDetails"]
