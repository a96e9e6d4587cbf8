-- The full-text index keyed by conversation: a row's rowid is the conversation's pk in the high 32
-- bits and the message's pk in the low 32 (see ftsKey in conversations.go), so a match names its
-- conversation without a look-up in messages (2–3 µs a match, most of a search's cost for words in
-- thousands of messages), and one conversation's rows are a rowid range (the "c<pk>" column this
-- replaces was one more term per message, a million distinct ones at 1M conversations).
-- Rebuilt from messages once: ~4.5 minutes at 10M messages on 2 cores.
DROP TRIGGER messages_fts_delete;
DROP TRIGGER messages_fts_update;
DROP TABLE messages_fts_vocab;
DROP TABLE messages_fts;
CREATE VIRTUAL TABLE messages_fts USING fts5(text, content='', contentless_delete=1, tokenize='unicode61 remove_diacritics 2');
CREATE VIRTUAL TABLE messages_fts_vocab USING fts5vocab(messages_fts, 'row');
INSERT INTO messages_fts (rowid, text)
    SELECT (conversation_pk << 32) | (pk & 4294967295), text FROM messages WHERE text <> '' ORDER BY conversation_pk, pk;
-- One segment instead of the ~30 a bulk insert leaves (each search looks its terms up in every
-- segment): 36 s more at 10M messages, and no merge left half done for automerge to continue.
INSERT INTO messages_fts (messages_fts) VALUES ('optimize');
CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages WHEN old.text <> '' BEGIN
    DELETE FROM messages_fts WHERE rowid = (old.conversation_pk << 32) | (old.pk & 4294967295);
END;
CREATE TRIGGER messages_fts_update AFTER UPDATE OF text ON messages BEGIN
    DELETE FROM messages_fts WHERE rowid = (old.conversation_pk << 32) | (old.pk & 4294967295);
    INSERT INTO messages_fts (rowid, text) SELECT (new.conversation_pk << 32) | (new.pk & 4294967295), new.text WHERE new.text <> '';
END;
