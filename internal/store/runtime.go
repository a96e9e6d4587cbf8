package store

import (
	"context"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"
	"unicode"

	"github.com/parley-hq/parley/internal/knowledge"
)

// ---- providers ----

// ProviderRow is a workspace's own model provider; the API key is sealed.
type ProviderRow struct {
	WorkspaceID     string
	BaseURL         string
	APIKeySealed    string
	TranscribeModel string
	VisionModel     string
	EmbeddingModel  string
	UpdatedAt       time.Time
}

// PutProvider stores (or replaces) a workspace's provider.
func (s *Store) PutProvider(ctx context.Context, p *ProviderRow) error {
	return s.Write(ctx, func(tx *sql.Tx) error {
		_, err := tx.Exec(`INSERT INTO providers (workspace_id, base_url, api_key_sealed, transcribe_model, vision_model, embedding_model, updated_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7)
			ON CONFLICT (workspace_id) DO UPDATE SET base_url = excluded.base_url, api_key_sealed = excluded.api_key_sealed,
			transcribe_model = excluded.transcribe_model, vision_model = excluded.vision_model, embedding_model = excluded.embedding_model,
			updated_at = excluded.updated_at`,
			p.WorkspaceID, p.BaseURL, p.APIKeySealed, p.TranscribeModel, p.VisionModel, p.EmbeddingModel, ms(p.UpdatedAt))
		return err
	})
}

// GetProvider returns a workspace's provider, or ErrNotFound.
func (s *Store) GetProvider(ctx context.Context, workspaceID string) (*ProviderRow, error) {
	var p ProviderRow
	var updated int64
	err := s.read.QueryRowContext(ctx, `SELECT workspace_id, base_url, api_key_sealed, transcribe_model, vision_model, embedding_model, updated_at
		FROM providers WHERE workspace_id = $1`, workspaceID).Scan(&p.WorkspaceID, &p.BaseURL, &p.APIKeySealed, &p.TranscribeModel, &p.VisionModel, &p.EmbeddingModel, &updated)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	p.UpdatedAt = fromMS(updated)
	return &p, nil
}

// DeleteProvider removes a workspace's provider (the default applies again).
func (s *Store) DeleteProvider(ctx context.Context, workspaceID string) error {
	return s.Write(ctx, func(tx *sql.Tx) error {
		res, err := tx.Exec(`DELETE FROM providers WHERE workspace_id = $1`, workspaceID)
		if err != nil {
			return err
		}
		return expectOne(res)
	})
}

// ---- prices ----

// PriceRow is a model's price in micro-dollars: per million tokens in and out, or per audio minute.
type PriceRow struct {
	Model           string
	InputMicros     int64
	OutputMicros    int64
	PerMinuteMicros int64
	UpdatedAt       time.Time
}

// PutPrice sets a model's price for a workspace.
func (s *Store) PutPrice(ctx context.Context, workspaceID string, p PriceRow) error {
	return s.Write(ctx, func(tx *sql.Tx) error {
		_, err := tx.Exec(`INSERT INTO prices (workspace_id, model, input_micros, output_micros, per_minute_micros, updated_at) VALUES ($1, $2, $3, $4, $5, $6)
			ON CONFLICT (workspace_id, model) DO UPDATE SET input_micros = excluded.input_micros, output_micros = excluded.output_micros,
			per_minute_micros = excluded.per_minute_micros, updated_at = excluded.updated_at`,
			workspaceID, p.Model, p.InputMicros, p.OutputMicros, p.PerMinuteMicros, ms(p.UpdatedAt))
		return err
	})
}

// GetPrice returns a workspace's own price for a model, or ErrNotFound.
func (s *Store) GetPrice(ctx context.Context, workspaceID, model string) (*PriceRow, error) {
	var p PriceRow
	var updated int64
	err := s.read.QueryRowContext(ctx, `SELECT model, input_micros, output_micros, per_minute_micros, updated_at FROM prices WHERE workspace_id = $1 AND model = $2`,
		workspaceID, model).Scan(&p.Model, &p.InputMicros, &p.OutputMicros, &p.PerMinuteMicros, &updated)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	p.UpdatedAt = fromMS(updated)
	return &p, nil
}

// ListPrices returns a workspace's own prices.
func (s *Store) ListPrices(ctx context.Context, workspaceID string) ([]PriceRow, error) {
	rows, err := s.read.QueryContext(ctx, `SELECT model, input_micros, output_micros, per_minute_micros, updated_at FROM prices WHERE workspace_id = $1 ORDER BY model`, workspaceID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []PriceRow
	for rows.Next() {
		var p PriceRow
		var updated int64
		if err := rows.Scan(&p.Model, &p.InputMicros, &p.OutputMicros, &p.PerMinuteMicros, &updated); err != nil {
			return nil, err
		}
		p.UpdatedAt = fromMS(updated)
		out = append(out, p)
	}
	return out, rows.Err()
}

// DeletePrice removes a workspace's own price (the default applies again).
func (s *Store) DeletePrice(ctx context.Context, workspaceID, model string) error {
	return s.Write(ctx, func(tx *sql.Tx) error {
		res, err := tx.Exec(`DELETE FROM prices WHERE workspace_id = $1 AND model = $2`, workspaceID, model)
		if err != nil {
			return err
		}
		return expectOne(res)
	})
}

// ---- HTTP tool secrets ----

// PutToolSecrets replaces the sealed header values of an assistant's HTTP tools: headers maps tool
// name → header name → sealed value. Tools or headers left out are removed.
func (s *Store) PutToolSecrets(ctx context.Context, workspaceID, assistantID string, headers map[string]map[string]string) error {
	now := nowMS()
	return s.Write(ctx, func(tx *sql.Tx) error {
		if _, err := tx.Exec(`DELETE FROM tool_secrets WHERE workspace_id = $1 AND assistant_id = $2`, workspaceID, assistantID); err != nil {
			return err
		}
		for tool, hs := range headers {
			for h, v := range hs {
				if _, err := tx.Exec(`INSERT INTO tool_secrets (workspace_id, assistant_id, tool_name, header, sealed_value, updated_at) VALUES ($1, $2, $3, $4, $5, $6)`,
					workspaceID, assistantID, tool, h, v, now); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

// ToolSecrets returns the sealed header values of an assistant's HTTP tools (tool → header → sealed).
func (s *Store) ToolSecrets(ctx context.Context, workspaceID, assistantID string) (map[string]map[string]string, error) {
	rows, err := s.read.QueryContext(ctx, `SELECT tool_name, header, sealed_value FROM tool_secrets WHERE workspace_id = $1 AND assistant_id = $2`, workspaceID, assistantID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]map[string]string{}
	for rows.Next() {
		var tool, h, v string
		if err := rows.Scan(&tool, &h, &v); err != nil {
			return nil, err
		}
		if out[tool] == nil {
			out[tool] = map[string]string{}
		}
		out[tool][h] = v
	}
	return out, rows.Err()
}

// ---- knowledge bases ----

const kbColumns = `k.id, k.workspace_id, k.name, k.description, k.created_at, k.updated_at,
	(SELECT COUNT(*) FROM kb_documents d WHERE d.knowledge_base_id = k.id),
	(SELECT COALESCE(SUM(d.chunk_count), 0) FROM kb_documents d WHERE d.knowledge_base_id = k.id)`

func scanKB(r scanner) (*knowledge.KnowledgeBase, error) {
	var kb knowledge.KnowledgeBase
	var created, updated int64
	if err := r.Scan(&kb.ID, &kb.WorkspaceID, &kb.Name, &kb.Description, &created, &updated, &kb.DocumentCount, &kb.ChunkCount); err != nil {
		return nil, err
	}
	kb.CreatedAt, kb.UpdatedAt = fromMS(created), fromMS(updated)
	return &kb, nil
}

// CreateKnowledgeBase stores a new knowledge base.
func (s *Store) CreateKnowledgeBase(ctx context.Context, kb *knowledge.KnowledgeBase) error {
	return s.Write(ctx, func(tx *sql.Tx) error {
		_, err := tx.Exec(`INSERT INTO knowledge_bases (id, workspace_id, name, description, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6)`,
			kb.ID, kb.WorkspaceID, kb.Name, kb.Description, ms(kb.CreatedAt), ms(kb.UpdatedAt))
		return err
	})
}

// GetKnowledgeBase returns a knowledge base of the workspace.
func (s *Store) GetKnowledgeBase(ctx context.Context, workspaceID, id string) (*knowledge.KnowledgeBase, error) {
	kb, err := scanKB(s.read.QueryRowContext(ctx, `SELECT `+kbColumns+` FROM knowledge_bases k WHERE k.id = $1 AND k.workspace_id = $2`, id, workspaceID))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	return kb, err
}

// ListKnowledgeBases returns the workspace's knowledge bases, oldest first.
func (s *Store) ListKnowledgeBases(ctx context.Context, workspaceID string) ([]*knowledge.KnowledgeBase, error) {
	rows, err := s.read.QueryContext(ctx, `SELECT `+kbColumns+` FROM knowledge_bases k WHERE k.workspace_id = $1 ORDER BY k.created_at, k.id`, workspaceID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []*knowledge.KnowledgeBase{}
	for rows.Next() {
		kb, err := scanKB(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, kb)
	}
	return out, rows.Err()
}

// DeleteKnowledgeBase removes a knowledge base with its documents and passages.
func (s *Store) DeleteKnowledgeBase(ctx context.Context, workspaceID, id string) error {
	return s.Write(ctx, func(tx *sql.Tx) error {
		if _, err := tx.Exec(`DELETE FROM kb_chunks WHERE workspace_id = $1 AND knowledge_base_id = $2`, workspaceID, id); err != nil {
			return err
		}
		if _, err := tx.Exec(`DELETE FROM kb_documents WHERE workspace_id = $1 AND knowledge_base_id = $2`, workspaceID, id); err != nil {
			return err
		}
		res, err := tx.Exec(`DELETE FROM knowledge_bases WHERE workspace_id = $1 AND id = $2`, workspaceID, id)
		if err != nil {
			return err
		}
		return expectOne(res)
	})
}

// AddDocument stores a document with its passages (indexed by the FTS triggers) in one transaction.
func (s *Store) AddDocument(ctx context.Context, d *knowledge.Document, chunks []knowledge.Chunk) error {
	return s.Write(ctx, func(tx *sql.Tx) error {
		_, err := tx.Exec(`INSERT INTO kb_documents (id, workspace_id, knowledge_base_id, title, filename, mime_type, size_bytes, chunk_count, embedded, created_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
			d.ID, d.WorkspaceID, d.KnowledgeBaseID, d.Title, d.Filename, d.MimeType, d.SizeBytes, d.ChunkCount, boolInt(d.Embedded), ms(d.CreatedAt))
		if err != nil {
			return fmt.Errorf("insert document: %w", err)
		}
		stmt, err := tx.Prepare(`INSERT INTO kb_chunks (workspace_id, knowledge_base_id, document_id, position, content, embedding) VALUES ($1, $2, $3, $4, $5, $6)`)
		if err != nil {
			return err
		}
		defer stmt.Close()
		for _, c := range chunks {
			var emb any
			if len(c.Embedding) > 0 {
				emb = encodeVector(c.Embedding)
			}
			if _, err := stmt.Exec(d.WorkspaceID, d.KnowledgeBaseID, d.ID, c.Position, c.Content, emb); err != nil {
				return fmt.Errorf("insert chunk: %w", err)
			}
		}
		_, err = tx.Exec(`UPDATE knowledge_bases SET updated_at = $1 WHERE id = $2 AND workspace_id = $3`, ms(d.CreatedAt), d.KnowledgeBaseID, d.WorkspaceID)
		return err
	})
}

// ListDocuments returns a knowledge base's documents, oldest first.
func (s *Store) ListDocuments(ctx context.Context, workspaceID, kbID string) ([]*knowledge.Document, error) {
	rows, err := s.read.QueryContext(ctx, `SELECT id, workspace_id, knowledge_base_id, title, filename, mime_type, size_bytes, chunk_count, embedded, created_at
		FROM kb_documents WHERE workspace_id = $1 AND knowledge_base_id = $2 ORDER BY created_at, id`, workspaceID, kbID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []*knowledge.Document{}
	for rows.Next() {
		var d knowledge.Document
		var embedded int
		var created int64
		if err := rows.Scan(&d.ID, &d.WorkspaceID, &d.KnowledgeBaseID, &d.Title, &d.Filename, &d.MimeType, &d.SizeBytes, &d.ChunkCount, &embedded, &created); err != nil {
			return nil, err
		}
		d.Embedded = embedded != 0
		d.CreatedAt = fromMS(created)
		out = append(out, &d)
	}
	return out, rows.Err()
}

// DeleteDocument removes a document and its passages.
func (s *Store) DeleteDocument(ctx context.Context, workspaceID, kbID, id string) error {
	return s.Write(ctx, func(tx *sql.Tx) error {
		if _, err := tx.Exec(`DELETE FROM kb_chunks WHERE workspace_id = $1 AND knowledge_base_id = $2 AND document_id = $3`, workspaceID, kbID, id); err != nil {
			return err
		}
		res, err := tx.Exec(`DELETE FROM kb_documents WHERE workspace_id = $1 AND knowledge_base_id = $2 AND id = $3`, workspaceID, kbID, id)
		if err != nil {
			return err
		}
		return expectOne(res)
	})
}

// ListChunks returns a knowledge base's passages in document order.
func (s *Store) ListChunks(ctx context.Context, workspaceID, kbID, documentID string, limit int) ([]knowledge.Chunk, error) {
	q := `SELECT c.pk, c.knowledge_base_id, c.document_id, d.title, c.position, c.content FROM kb_chunks c JOIN kb_documents d ON d.id = c.document_id
		WHERE c.workspace_id = $1 AND c.knowledge_base_id = $2 AND ($3 = '' OR c.document_id = $3)
		ORDER BY d.created_at, c.document_id, c.position LIMIT $4`
	args := []any{workspaceID, kbID, documentID, limit}
	rows, err := s.read.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []knowledge.Chunk{}
	for rows.Next() {
		var c knowledge.Chunk
		if err := rows.Scan(&c.Pk, &c.KnowledgeBaseID, &c.DocumentID, &c.Title, &c.Position, &c.Content); err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

func inList(start int, ids []string) (string, []any) {
	ph := make([]string, len(ids))
	args := make([]any, len(ids))
	for i, id := range ids {
		ph[i] = fmt.Sprintf("$%d", start+i)
		args[i] = id
	}
	return "(" + strings.Join(ph, ", ") + ")", args
}

// SearchChunks runs an FTS5 MATCH over the knowledge bases' passages, best (lowest bm25) first.
func (s *Store) SearchChunks(ctx context.Context, workspaceID string, kbIDs []string, match string, limit int) ([]knowledge.Chunk, error) {
	in, inArgs := inList(3, kbIDs)
	q := `SELECT c.pk, c.knowledge_base_id, c.document_id, d.title, c.position, c.content, bm25(kb_chunks_fts) AS score
		FROM kb_chunks_fts JOIN kb_chunks c ON c.pk = kb_chunks_fts.rowid JOIN kb_documents d ON d.id = c.document_id
		WHERE kb_chunks_fts MATCH $1 AND c.workspace_id = $2 AND c.knowledge_base_id IN ` + in + ` ORDER BY score` + limitSQL(limit)
	if s.dialect == "postgres" {
		// The same ranking idea on tsvector: any of the words, best first (the score is negated
		// below, as bm25's lower-is-better is).
		match = tsQueryFromFTS(match)
		if match == "" {
			return nil, nil
		}
		q = `SELECT c.pk, c.knowledge_base_id, c.document_id, d.title, c.position, c.content, -ts_rank_cd(c.tsv, to_tsquery('english', $1)) AS score
			FROM kb_chunks c JOIN kb_documents d ON d.id = c.document_id
			WHERE c.tsv @@ to_tsquery('english', $1) AND c.workspace_id = $2 AND c.knowledge_base_id IN ` + in + ` ORDER BY score` + limitSQL(limit)
	}
	rows, err := s.read.QueryContext(ctx, q, append([]any{match, workspaceID}, inArgs...)...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []knowledge.Chunk
	for rows.Next() {
		var c knowledge.Chunk
		if err := rows.Scan(&c.Pk, &c.KnowledgeBaseID, &c.DocumentID, &c.Title, &c.Position, &c.Content, &c.Score); err != nil {
			return nil, err
		}
		c.Score = -c.Score
		out = append(out, c)
	}
	return out, rows.Err()
}

// EmbeddedChunks returns passages that have embeddings, for vector ranking.
func (s *Store) EmbeddedChunks(ctx context.Context, workspaceID string, kbIDs []string, limit int) ([]knowledge.Chunk, error) {
	in, inArgs := inList(3, kbIDs)
	q := `SELECT c.pk, c.knowledge_base_id, c.document_id, d.title, c.position, c.content, c.embedding
		FROM kb_chunks c JOIN kb_documents d ON d.id = c.document_id
		WHERE c.workspace_id = $1 AND c.embedding IS NOT NULL AND c.knowledge_base_id IN ` + in + ` LIMIT $2`
	rows, err := s.read.QueryContext(ctx, q, append([]any{workspaceID, limit}, inArgs...)...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []knowledge.Chunk
	for rows.Next() {
		var c knowledge.Chunk
		var emb []byte
		if err := rows.Scan(&c.Pk, &c.KnowledgeBaseID, &c.DocumentID, &c.Title, &c.Position, &c.Content, &emb); err != nil {
			return nil, err
		}
		c.Embedding = decodeVector(emb)
		out = append(out, c)
	}
	return out, rows.Err()
}

func encodeVector(v []float32) []byte {
	b := make([]byte, 4*len(v))
	for i, f := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(f))
	}
	return b
}

func decodeVector(b []byte) []float32 {
	v := make([]float32, len(b)/4)
	for i := range v {
		v[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return v
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// ---- post-conversation extraction ----

// ClaimExtraction records that a conversation's activity up to lastMessageAt is being extracted;
// it reports false when that (or later) activity was claimed before, by this or another instance.
func (s *Store) ClaimExtraction(ctx context.Context, workspaceID, conversationID string, lastMessageAt time.Time) (bool, error) {
	claimed := false
	err := s.Write(ctx, func(tx *sql.Tx) error {
		var id string
		err := tx.QueryRow(`INSERT INTO extractions (conversation_id, workspace_id, last_message_at, extracted_at) VALUES ($1, $2, $3, $4)
			ON CONFLICT (conversation_id) DO UPDATE SET last_message_at = excluded.last_message_at, extracted_at = excluded.extracted_at
			WHERE extractions.last_message_at < excluded.last_message_at RETURNING conversation_id`,
			conversationID, workspaceID, ms(lastMessageAt), nowMS()).Scan(&id)
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		claimed = true
		return nil
	})
	return claimed, err
}

// IdleConversation is an active conversation whose last activity lies in a sweep's window.
type IdleConversation struct {
	WorkspaceID, ID string
	LastMessageAt   time.Time
}

// IdleConversations lists active conversations with an assistant whose last activity is in
// [from, to) and was not extracted yet, per workspace along its status index.
func (s *Store) IdleConversations(ctx context.Context, from, to time.Time, limit int) ([]IdleConversation, error) {
	wsRows, err := s.read.QueryContext(ctx, `SELECT id FROM workspaces ORDER BY id`)
	if err != nil {
		return nil, err
	}
	var workspaces []string
	for wsRows.Next() {
		var id string
		if err := wsRows.Scan(&id); err != nil {
			wsRows.Close()
			return nil, err
		}
		workspaces = append(workspaces, id)
	}
	wsRows.Close()
	if err := wsRows.Err(); err != nil {
		return nil, err
	}
	var out []IdleConversation
	for _, ws := range workspaces {
		rows, err := s.read.QueryContext(ctx, `SELECT c.id, c.last_message_at FROM conversations c
			WHERE c.workspace_id = $1 AND c.status = 'active' AND c.last_message_at >= $2 AND c.last_message_at < $3 AND c.assistant_id <> ''
			AND NOT EXISTS (SELECT 1 FROM extractions e WHERE e.conversation_id = c.id AND e.last_message_at >= c.last_message_at)
			ORDER BY c.last_message_at LIMIT $4`, ws, ms(from), ms(to), limit-len(out))
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			var ic IdleConversation
			var last int64
			if err := rows.Scan(&ic.ID, &last); err != nil {
				rows.Close()
				return nil, err
			}
			ic.WorkspaceID, ic.LastMessageAt = ws, fromMS(last)
			out = append(out, ic)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
		if len(out) >= limit {
			break
		}
	}
	return out, nil
}

// tsQueryFromFTS turns knowledge.MatchQuery's FTS5 query ("w1" OR "w2") into a tsquery (w1 | w2).
// The words are letters and digits only, so nothing in them is tsquery syntax.
func tsQueryFromFTS(match string) string {
	var words []string
	for _, t := range strings.Split(match, " OR ") {
		w := strings.Map(func(r rune) rune {
			if unicode.IsLetter(r) || unicode.IsDigit(r) {
				return r
			}
			return -1
		}, t)
		if w != "" {
			words = append(words, w)
		}
	}
	return strings.Join(words, " | ")
}
