-- Each conversation's term signature (internal/terms): a Bloom filter over the words of its
-- messages, so a common-word search skips conversations that cannot match without asking the
-- full-text index. NULL means not computed yet: a new conversation's first messages start it;
-- conversations stored before this migration wait for the background fill. Those are always asked.
ALTER TABLE conversations ADD COLUMN terms BLOB;
-- What the fill still has to do, so that finding it costs nothing once it is done.
CREATE INDEX conversations_terms_unknown ON conversations(pk) WHERE terms IS NULL;
