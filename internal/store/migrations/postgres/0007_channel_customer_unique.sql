-- One open WhatsApp conversation per (sender, customer), enforced by the database: instances
-- receiving the same new customer at once cannot both create one (find-or-create yields to the row
-- that won). Ended conversations do not count, so a customer who writes again starts a new one.
CREATE UNIQUE INDEX conversations_open_whatsapp_customer ON conversations(workspace_id, channel_id, customer_id)
    WHERE type = 'whatsapp' AND status <> 'ended' AND channel_id <> '';
