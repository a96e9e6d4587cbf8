-- Verified WhatsApp deliveries acknowledged before they were processed: during a burst the webhook
-- keeps each delivery as it came (durable before the 200) and drainers process them in arrival
-- order (rows locked with SKIP LOCKED while one instance works on them), deleting each row once its
-- messages are stored. A restart finishes what is left.
CREATE TABLE wa_inbox (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  phone_number_ids text NOT NULL,
  body bytea NOT NULL,
  received_at bigint NOT NULL
);
