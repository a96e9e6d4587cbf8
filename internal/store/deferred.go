package store

import (
	"database/sql"
	"fmt"
	"strconv"
)

// deferred is work that the writes of one SQLite group commit leave for its end: full-text rows and
// metrics rollup deltas. Written once per batch instead of once per write, because FTS5 flushes its
// pending index into a new segment at every statement journal and savepoint (a segment per message,
// then merges), and the writes of a batch mostly add to the same few rollup rows.
type deferred struct {
	fts     []int64 // message pks whose text goes into messages_fts
	rollups map[rollupKey]*rollupDelta
}

type rollupKey struct {
	workspaceID, assistantID, typ string
	hour                          int64 // unix seconds of the hour's start
}

// merge adds a successful write's deferred work to the batch's.
func (d *deferred) merge(o *deferred) {
	d.fts = append(d.fts, o.fts...)
	for k, v := range o.rollups {
		d.addRollup(k, v)
	}
}

func (d *deferred) addRollup(k rollupKey, v *rollupDelta) {
	if d.rollups == nil {
		d.rollups = map[rollupKey]*rollupDelta{}
	}
	cur := d.rollups[k]
	if cur == nil {
		cur = &rollupDelta{}
		d.rollups[k] = cur
	}
	cur.add(v)
}

// write stores the batch's deferred work in its transaction, before the commit.
func (d *deferred) write(tx *sql.Tx) error {
	if err := indexText(tx, d.fts); err != nil {
		return err
	}
	for k, v := range d.rollups {
		if err := upsertRollup(tx, k, v); err != nil {
			return err
		}
	}
	return nil
}

// indexText adds the messages' text to the full-text index (SQLite; PostgreSQL keeps a generated
// tsvector column). Messages deleted since they were inserted are skipped.
func indexText(tx *sql.Tx, pks []int64) error {
	if len(pks) == 0 {
		return nil
	}
	b := make([]byte, 0, len(pks)*8)
	b = append(b, '[')
	for i, pk := range pks {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendInt(b, pk, 10)
	}
	b = append(b, ']')
	// In key order: FTS5 starts a new segment whenever a rowid is lower than the one before.
	if _, err := tx.Exec(`INSERT INTO messages_fts (rowid, text) SELECT `+ftsKey+`, text FROM messages
		WHERE pk IN (SELECT value FROM json_each($1)) AND text <> '' ORDER BY 1`, string(b)); err != nil {
		return fmt.Errorf("index message text: %w", err)
	}
	return nil
}
