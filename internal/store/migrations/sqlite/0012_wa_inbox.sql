-- Verified WhatsApp deliveries acknowledged before they were processed: during a burst the webhook
-- keeps each delivery as it came (durable before the 200) and a drainer processes them in arrival
-- order, deleting each row once its messages are stored. A restart finishes what is left.
CREATE TABLE wa_inbox (
  id INTEGER PRIMARY KEY,
  phone_number_ids TEXT NOT NULL,
  body BLOB NOT NULL,
  received_at INTEGER NOT NULL
);
