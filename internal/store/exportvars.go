package store

import (
	"context"
	"fmt"
	"strings"

	"github.com/parley-hq/parley/internal/conversation"
)

// exportVariables reads the variables of a page of exported conversations with one query.
func (s *Store) exportVariables(ctx context.Context, pks []int64) (map[int64][]conversation.Variable, error) {
	var q sqlBuilder
	ph := make([]string, len(pks))
	for i, pk := range pks {
		ph[i] = q.arg(pk)
	}
	rows, err := s.read.QueryContext(ctx, `SELECT conversation_pk, name, value, source, updated_at FROM variables WHERE conversation_pk IN (`+strings.Join(ph, ", ")+`) ORDER BY conversation_pk, name`, q.args...)
	if err != nil {
		return nil, fmt.Errorf("export variables: %w", err)
	}
	defer rows.Close()
	out := map[int64][]conversation.Variable{}
	for rows.Next() {
		var pk, updated int64
		var v conversation.Variable
		if err := rows.Scan(&pk, &v.Name, &v.Value, &v.Source, &updated); err != nil {
			return nil, err
		}
		v.UpdatedAt = fromMS(updated)
		out[pk] = append(out[pk], v)
	}
	return out, rows.Err()
}
