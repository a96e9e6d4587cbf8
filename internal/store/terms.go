package store

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/parley-hq/parley/internal/conversation"
	"github.com/parley-hq/parley/internal/terms"
)

// Term signatures (SQLite): conversations.terms holds a Bloom filter over the words of the
// conversation's messages (internal/terms), kept as messages land, so that listWalk checks only
// conversations that may match (its query tests the bits, see mayHold). NULL: not computed yet
// (a new conversation's first messages start it; older ones wait for FillTerms).

// termsColumn is the signature in a conversation SELECT: NULL on PostgreSQL, which keeps none.
func (s *Store) termsColumn() string {
	if s.dialect == "sqlite" {
		return "c.terms"
	}
	return "NULL"
}

// termsAfter returns the signature sig (as stored) with the words of the stored messages added, or
// nil when nothing changes: no text, PostgreSQL, or a signature not known yet. NULL with no earlier
// messages (countBefore 0: a new conversation) is the empty signature; with earlier ones it stays
// unknown until the fill computes it from all the messages.
func (s *Store) termsAfter(sig []byte, countBefore int64, stored []*conversation.Message) []byte {
	if s.dialect != "sqlite" {
		return nil
	}
	if len(sig) != terms.Size && countBefore > 0 {
		return nil
	}
	changed := false
	for _, m := range stored {
		if m.Text != "" {
			sig = terms.Add(sig, m.Text)
			changed = true
		}
	}
	if !changed {
		return nil
	}
	return sig
}

// fillTermsBatch is how many conversations one fill transaction computes: small, so a fill step
// holds the writer for milliseconds.
const fillTermsBatch = 100

// FillTerms computes the signatures not known yet (conversations stored before signatures
// existed, or loaded around the store), one small transaction at a time, from conversation pk
// after on. It returns where to continue and whether it reached the end. SQLite only.
func (s *Store) FillTerms(ctx context.Context, after int64) (int64, bool, error) {
	if s.dialect != "sqlite" {
		return after, true, nil
	}
	done := false
	err := s.Write(ctx, func(tx *sql.Tx) error {
		pks, err := column[int64](tx.Query(`SELECT pk FROM conversations WHERE pk > $1 AND terms IS NULL ORDER BY pk`+limitSQL(fillTermsBatch), after))
		if err != nil {
			return err
		}
		done = len(pks) < fillTermsBatch
		for _, pk := range pks {
			sig, err := termsOf(tx, pk)
			if err != nil {
				return err
			}
			if _, err := tx.Exec(`UPDATE conversations SET terms = $1 WHERE pk = $2`, sig, pk); err != nil {
				return err
			}
			after = pk
		}
		return nil
	})
	if err != nil {
		return after, false, fmt.Errorf("fill terms: %w", err)
	}
	return after, done, nil
}

// termsOf computes a conversation's signature from its messages.
func termsOf(tx *sql.Tx, convPK int64) ([]byte, error) {
	texts, err := column[string](tx.Query(`SELECT text FROM messages WHERE conversation_pk = $1 AND text <> ''`, convPK))
	if err != nil {
		return nil, err
	}
	sig := make([]byte, terms.Size)
	for _, text := range texts {
		sig = terms.Add(sig, text)
	}
	return sig, nil
}
