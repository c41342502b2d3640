"""EmailReengagement: bulk campaigns and drip sequences through Mailgun. Not built yet
(issue 10): `CampaignService` answers UNIMPLEMENTED and the agent reports DISABLED."""
