"""RealtimeChat: the support chat over a bidirectional stream. Not built yet (issue 11):
`ChatService` answers UNIMPLEMENTED and the agent reports DISABLED."""
