-- The members plan of a text search (a word in a few thousand messages) walks conversations in
-- list order testing each against the matches' set. Over the activity index, which carries every
-- conversation's term signature for the common-word walk, that was ~0.7 µs a conversation passed;
-- over an index of the order alone it is about half (1M conversations, p50: 14.2 → 6.0 ms for the bench's
-- mid-frequency word, 11.6 → 6.9 ms for a word in 12k messages). One more index kept as messages land.
CREATE INDEX conversations_recent ON conversations(workspace_id, last_message_at DESC, pk DESC);
