package main

import (
	"errors"
	"time"
)

// ingest measures signed WhatsApp webhook deliveries against a bare handler. It needs the WhatsApp
// channel; until it is built in, it reports why it cannot run.
func ingest(c *client, srv *server, clients int, d time.Duration) error {
	_ = loadLoop
	return errors.New("the WhatsApp channel is not built in yet")
}
