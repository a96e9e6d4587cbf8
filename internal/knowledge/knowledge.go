// Package knowledge holds knowledge bases: documents (plain text, Markdown, HTML, PDF text) read
// into plain text, chunked into passages and indexed for full-text search (SQLite FTS5), with
// optional embeddings from the provider's /v1/embeddings for hybrid ranking.
package knowledge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sort"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/parley-hq/parley/internal/ids"
	"github.com/parley-hq/parley/internal/tools"
)

// KnowledgeBase is a named set of documents an assistant can search.
type KnowledgeBase struct {
	ID            string
	WorkspaceID   string
	Name          string
	Description   string
	DocumentCount int64
	ChunkCount    int64
	CreatedAt     time.Time
	UpdatedAt     time.Time
}

// Document is one uploaded document.
type Document struct {
	ID              string
	WorkspaceID     string
	KnowledgeBaseID string
	Title           string
	Filename        string
	MimeType        string
	SizeBytes       int64
	ChunkCount      int
	Embedded        bool
	CreatedAt       time.Time
}

// Chunk is one indexed passage.
type Chunk struct {
	Pk              int64
	KnowledgeBaseID string
	DocumentID      string
	Title           string
	Position        int
	Content         string
	Embedding       []float32
	Score           float64
}

// Repository is what knowledge needs from the store.
type Repository interface {
	CreateKnowledgeBase(ctx context.Context, kb *KnowledgeBase) error
	GetKnowledgeBase(ctx context.Context, workspaceID, id string) (*KnowledgeBase, error)
	ListKnowledgeBases(ctx context.Context, workspaceID string) ([]*KnowledgeBase, error)
	DeleteKnowledgeBase(ctx context.Context, workspaceID, id string) error
	AddDocument(ctx context.Context, d *Document, chunks []Chunk) error
	ListDocuments(ctx context.Context, workspaceID, kbID string) ([]*Document, error)
	DeleteDocument(ctx context.Context, workspaceID, kbID, id string) error
	ListChunks(ctx context.Context, workspaceID, kbID, documentID string, limit int) ([]Chunk, error)
	// SearchChunks runs an FTS5 query over the knowledge bases' chunks, best first (bm25).
	SearchChunks(ctx context.Context, workspaceID string, kbIDs []string, match string, limit int) ([]Chunk, error)
	// EmbeddedChunks returns up to limit chunks of the knowledge bases that have embeddings.
	EmbeddedChunks(ctx context.Context, workspaceID string, kbIDs []string, limit int) ([]Chunk, error)
}

// Embedder turns texts into vectors for a workspace; ErrNoEmbeddings when none is configured.
type Embedder interface {
	Embed(ctx context.Context, workspaceID string, inputs []string) ([][]float32, error)
}

// ErrNoEmbeddings means the workspace has no embedding model: search is full-text only.
var ErrNoEmbeddings = errors.New("no embedding model configured")

// Errors the API maps to 4xx answers.
var (
	ErrNotFound = errors.New("knowledge base not found")
)

// InputError is bad input: a clear message, nothing changed.
type InputError struct{ Field, Message string }

func (e *InputError) Error() string { return e.Field + ": " + e.Message }

// Limits.
const (
	MaxDocumentBytes = 20 << 20
	MaxChunks        = 5000 // per document
	maxVectorScan    = 20000
)

// Service manages knowledge bases and searches them.
type Service struct {
	repo     Repository
	Embedder Embedder
	Log      *slog.Logger
	now      func() time.Time
}

// NewService returns the knowledge service.
func NewService(repo Repository, embedder Embedder, log *slog.Logger) *Service {
	if log == nil {
		log = slog.Default()
	}
	return &Service{repo: repo, Embedder: embedder, Log: log, now: func() time.Time { return time.Now().UTC() }}
}

// Create makes a knowledge base.
func (s *Service) Create(ctx context.Context, workspaceID, name, description string) (*KnowledgeBase, error) {
	name = strings.TrimSpace(name)
	if name == "" || utf8.RuneCountInString(name) > 200 {
		return nil, &InputError{"name", "must be 1 to 200 characters"}
	}
	if len(description) > 4000 {
		return nil, &InputError{"description", "must be at most 4000 characters"}
	}
	now := s.now()
	kb := &KnowledgeBase{ID: ids.New(), WorkspaceID: workspaceID, Name: name, Description: description, CreatedAt: now, UpdatedAt: now}
	if err := s.repo.CreateKnowledgeBase(ctx, kb); err != nil {
		return nil, fmt.Errorf("create knowledge base: %w", err)
	}
	return kb, nil
}

// Get returns one knowledge base of the workspace.
func (s *Service) Get(ctx context.Context, workspaceID, id string) (*KnowledgeBase, error) {
	kb, err := s.repo.GetKnowledgeBase(ctx, workspaceID, id)
	if err != nil {
		return nil, ErrNotFound
	}
	return kb, nil
}

// List returns the workspace's knowledge bases.
func (s *Service) List(ctx context.Context, workspaceID string) ([]*KnowledgeBase, error) {
	return s.repo.ListKnowledgeBases(ctx, workspaceID)
}

// Delete removes a knowledge base with its documents.
func (s *Service) Delete(ctx context.Context, workspaceID, id string) error {
	if _, err := s.Get(ctx, workspaceID, id); err != nil {
		return err
	}
	return s.repo.DeleteKnowledgeBase(ctx, workspaceID, id)
}

// Exists checks that every id names a knowledge base of the workspace.
func (s *Service) Exists(ctx context.Context, workspaceID string, kbIDs []string) error {
	for _, id := range kbIDs {
		if _, err := s.repo.GetKnowledgeBase(ctx, workspaceID, id); err != nil {
			return fmt.Errorf("%w: %s", ErrNotFound, id)
		}
	}
	return nil
}

// DocumentInput is a document to add.
type DocumentInput struct {
	Title    string
	Filename string
	MimeType string
	Content  []byte
}

// AddDocument reads, chunks, indexes (and, with an embedding model, embeds) a document.
func (s *Service) AddDocument(ctx context.Context, workspaceID, kbID string, in DocumentInput) (*Document, error) {
	if _, err := s.Get(ctx, workspaceID, kbID); err != nil {
		return nil, err
	}
	if len(in.Content) == 0 {
		return nil, &InputError{"content", "is required"}
	}
	if len(in.Content) > MaxDocumentBytes {
		return nil, &InputError{"content", fmt.Sprintf("must be at most %d bytes", MaxDocumentBytes)}
	}
	format := DetectFormat(in.MimeType, in.Filename, in.Content)
	text, err := ExtractText(format, in.Content)
	if err != nil {
		return nil, &InputError{"content", err.Error()}
	}
	title := strings.TrimSpace(in.Title)
	if title == "" {
		title = strings.TrimSpace(in.Filename)
	}
	if title == "" {
		first := strings.SplitN(text, "\n", 2)[0]
		if r := []rune(first); len(r) > 80 {
			first = string(r[:80])
		}
		title = first
	}
	if utf8.RuneCountInString(title) > 300 {
		return nil, &InputError{"title", "must be at most 300 characters"}
	}
	parts := Split(text, ChunkSize)
	if len(parts) > MaxChunks {
		return nil, &InputError{"content", fmt.Sprintf("is too long (more than %d passages)", MaxChunks)}
	}
	mime := in.MimeType
	if mime == "" {
		mime = map[Format]string{FormatText: "text/plain", FormatMarkdown: "text/markdown", FormatHTML: "text/html", FormatPDF: "application/pdf"}[format]
	}
	d := &Document{ID: ids.New(), WorkspaceID: workspaceID, KnowledgeBaseID: kbID, Title: title, Filename: in.Filename, MimeType: mime,
		SizeBytes: int64(len(in.Content)), ChunkCount: len(parts), CreatedAt: s.now()}
	chunks := make([]Chunk, len(parts))
	for i, p := range parts {
		chunks[i] = Chunk{KnowledgeBaseID: kbID, DocumentID: d.ID, Title: title, Position: i, Content: p}
	}
	if s.Embedder != nil {
		if err := s.embedChunks(ctx, workspaceID, title, chunks); err == nil {
			d.Embedded = true
		} else if !errors.Is(err, ErrNoEmbeddings) {
			s.Log.Warn("knowledge: embeddings failed; the document is searchable by full text only", "document", d.ID, "err", err)
		}
	}
	if err := s.repo.AddDocument(ctx, d, chunks); err != nil {
		return nil, fmt.Errorf("store document: %w", err)
	}
	return d, nil
}

func (s *Service) embedChunks(ctx context.Context, workspaceID, title string, chunks []Chunk) error {
	const batch = 64
	for start := 0; start < len(chunks); start += batch {
		end := min(start+batch, len(chunks))
		inputs := make([]string, 0, end-start)
		for _, c := range chunks[start:end] {
			inputs = append(inputs, title+"\n\n"+c.Content)
		}
		vecs, err := s.Embedder.Embed(ctx, workspaceID, inputs)
		if err != nil {
			for i := range chunks {
				chunks[i].Embedding = nil
			}
			return err
		}
		for i, v := range vecs {
			chunks[start+i].Embedding = v
		}
	}
	return nil
}

// Documents lists a knowledge base's documents.
func (s *Service) Documents(ctx context.Context, workspaceID, kbID string) ([]*Document, error) {
	if _, err := s.Get(ctx, workspaceID, kbID); err != nil {
		return nil, err
	}
	return s.repo.ListDocuments(ctx, workspaceID, kbID)
}

// DeleteDocument removes a document and its passages.
func (s *Service) DeleteDocument(ctx context.Context, workspaceID, kbID, id string) error {
	if _, err := s.Get(ctx, workspaceID, kbID); err != nil {
		return err
	}
	return s.repo.DeleteDocument(ctx, workspaceID, kbID, id)
}

// Chunks lists a knowledge base's passages (of one document when documentID is set).
func (s *Service) Chunks(ctx context.Context, workspaceID, kbID, documentID string, limit int) ([]Chunk, error) {
	if _, err := s.Get(ctx, workspaceID, kbID); err != nil {
		return nil, err
	}
	if limit <= 0 || limit > 1000 {
		limit = 1000
	}
	return s.repo.ListChunks(ctx, workspaceID, kbID, documentID, limit)
}

// Search finds the passages that best answer query in the knowledge bases: full-text (bm25)
// ranking, fused with vector similarity when the workspace has an embedding model (reciprocal
// rank fusion). It implements tools.Searcher.
func (s *Service) Search(ctx context.Context, workspaceID string, kbIDs []string, query string, limit int) ([]tools.Passage, error) {
	if limit <= 0 {
		limit = 5
	}
	if len(kbIDs) == 0 || strings.TrimSpace(query) == "" {
		return []tools.Passage{}, nil
	}
	candidates := limit * 4
	var lists [][]Chunk
	if match := MatchQuery(query); match != "" {
		fts, err := s.repo.SearchChunks(ctx, workspaceID, kbIDs, match, candidates)
		if err != nil {
			return nil, fmt.Errorf("full-text search: %w", err)
		}
		lists = append(lists, fts)
	}
	if s.Embedder != nil {
		if vec, err := s.vectorSearch(ctx, workspaceID, kbIDs, query, candidates); err == nil {
			lists = append(lists, vec)
		} else if !errors.Is(err, ErrNoEmbeddings) {
			s.Log.Warn("knowledge: vector search failed; full text only", "err", err)
		}
	}
	fused := fuse(lists)
	if len(fused) > limit {
		fused = fused[:limit]
	}
	out := make([]tools.Passage, 0, len(fused))
	for _, c := range fused {
		out = append(out, tools.Passage{KnowledgeBaseID: c.KnowledgeBaseID, DocumentID: c.DocumentID, Title: c.Title, Content: c.Content, Score: math.Round(c.Score*1e6) / 1e6})
	}
	return out, nil
}

func (s *Service) vectorSearch(ctx context.Context, workspaceID string, kbIDs []string, query string, limit int) ([]Chunk, error) {
	chunks, err := s.repo.EmbeddedChunks(ctx, workspaceID, kbIDs, maxVectorScan)
	if err != nil {
		return nil, err
	}
	if len(chunks) == 0 {
		return nil, ErrNoEmbeddings
	}
	vecs, err := s.Embedder.Embed(ctx, workspaceID, []string{query})
	if err != nil {
		return nil, err
	}
	q := vecs[0]
	for i := range chunks {
		chunks[i].Score = cosine(q, chunks[i].Embedding)
	}
	sort.SliceStable(chunks, func(a, b int) bool { return chunks[a].Score > chunks[b].Score })
	if len(chunks) > limit {
		chunks = chunks[:limit]
	}
	// Only passages with some likeness count: an unrelated question finds nothing.
	out := chunks[:0]
	for _, c := range chunks {
		if c.Score >= 0.25 {
			out = append(out, c)
		}
	}
	return out, nil
}

func cosine(a, b []float32) float64 {
	if len(a) != len(b) || len(a) == 0 {
		return 0
	}
	var dot, na, nb float64
	for i := range a {
		dot += float64(a[i]) * float64(b[i])
		na += float64(a[i]) * float64(a[i])
		nb += float64(b[i]) * float64(b[i])
	}
	if na == 0 || nb == 0 {
		return 0
	}
	return dot / (math.Sqrt(na) * math.Sqrt(nb))
}

// fuse merges ranked lists by reciprocal rank fusion (k = 60); a chunk's score is its fused score.
func fuse(lists [][]Chunk) []Chunk {
	if len(lists) == 1 {
		out := lists[0]
		for i := range out {
			out[i].Score = 1 / float64(60+i+1)
		}
		return out
	}
	scores := map[int64]float64{}
	byPk := map[int64]Chunk{}
	var order []int64
	for _, l := range lists {
		for rank, c := range l {
			if _, ok := byPk[c.Pk]; !ok {
				byPk[c.Pk] = c
				order = append(order, c.Pk)
			}
			scores[c.Pk] += 1 / float64(60+rank+1)
		}
	}
	out := make([]Chunk, 0, len(order))
	for _, pk := range order {
		c := byPk[pk]
		c.Score = scores[pk]
		out = append(out, c)
	}
	sort.SliceStable(out, func(a, b int) bool { return out[a].Score > out[b].Score })
	return out
}

// stopwords are left out of full-text queries: they match everything and rank nothing.
var stopwords = map[string]bool{}

func init() {
	for _, w := range strings.Fields(`a an and are as at be been but by can could did do does for from had has have how i if in into is it its
		me my of on or our please so that the their them there these they this to us was we were what when where which who whom why will with
		would you your yours hi hello hey thanks thank tell know want need like about any some get also just should may might much many
		el la los las de del y o que en un una es por para con se su al lo como más le`) {
		stopwords[w] = true
	}
}

// MatchQuery turns a question into an FTS5 query: its meaningful words, each quoted (so no word
// is read as FTS syntax), any of them matching; "" when nothing is left to search for.
func MatchQuery(q string) string {
	seen := map[string]bool{}
	var terms []string
	for _, w := range strings.FieldsFunc(strings.ToLower(q), func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsNumber(r) }) {
		if utf8.RuneCountInString(w) < 2 && !unicode.IsNumber([]rune(w)[0]) || stopwords[w] || seen[w] {
			continue
		}
		seen[w] = true
		terms = append(terms, `"`+w+`"`)
		if len(terms) == 24 {
			break
		}
	}
	return strings.Join(terms, " OR ")
}
