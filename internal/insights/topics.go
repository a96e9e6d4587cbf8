package insights

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sort"
	"strings"

	"github.com/parley-hq/parley/internal/knowledge"
)

// Topic is a group of customer questions about the same thing.
type Topic struct {
	Label string
	// Kind says how the group was made: "document" (the questions match a knowledge-base document,
	// whose title is the label), "keywords" (they share their most common keyword or pair of
	// keywords) or "embeddings" (their embeddings are alike).
	Kind            string
	DocumentID      string
	Keywords        []string // the group's most common keywords
	Count           int
	Share           float64  // Count / QuestionStats.Scanned
	Examples        []string // up to maxExamples distinct questions, the most asked first
	ConversationIDs []string // up to maxSampleIDs, most recent first
}

// Limits and thresholds of topic grouping.
const (
	maxExamples       = 3
	maxTopicKeywords  = 5
	maxKBDocuments    = 500 // documents read to match questions offline
	maxKBChunksPerDoc = 20  // the start of each document is enough to know what it is about
	titleWeight       = 3.0 // a keyword in a document's title counts three times one in its text
	maxEmbedded       = 1000
	embedBatch        = 256
	// clusterSimilarity is how alike (cosine) a question must be to a cluster's first question to
	// join it; labelSimilarity how alike a passage must be to a cluster to name it.
	clusterSimilarity = 0.8
	labelSimilarity   = 0.5
	maxLabelChunks    = 20_000
)

// assignment is the group a question belongs to. A label made of keywords is kept as stems
// (labelStems) and written out with the words customers used when the topics are built.
type assignment struct {
	key, label, labelStems, kind, docID string
}

// topics groups the questions: by embedding similarity when the workspace has an embedding model,
// otherwise offline (knowledge-base documents, then keywords).
func (s *Service) topics(ctx context.Context, workspaceID string, qs []question, st *QuestionStats) ([]Topic, error) {
	sigs := make([]signature, len(qs))
	for i := range qs {
		sigs[i] = signatureOf(qs[i].Text)
		if len(sigs[i].stems) == 0 {
			st.WithoutKeywords++
		}
	}
	kbs, err := s.Source.AssistantKnowledge(ctx, workspaceID)
	if err != nil {
		return nil, err
	}
	st.Method = "keywords"
	var assign []*assignment
	useEmbeddings := false
	if s.Embedder != nil && len(qs) > 0 {
		if useEmbeddings, err = s.Embedder.HasEmbeddings(ctx, workspaceID); err != nil {
			return nil, fmt.Errorf("embedding settings: %w", err)
		}
	}
	if useEmbeddings {
		assign, st.Embedded, err = s.embeddingTopics(ctx, workspaceID, qs, sigs, kbs)
		switch {
		case err == nil:
			st.Method = "embeddings"
		case errors.Is(err, knowledge.ErrNoEmbeddings):
			assign = nil
		case ctx.Err() != nil:
			return nil, ctx.Err()
		default:
			if s.Log != nil {
				s.Log.Warn("insights: embeddings failed; topics grouped offline", "workspace", workspaceID, "err", err)
			}
			st.Note = "embeddings failed (" + err.Error() + "); topics were grouped offline"
			assign, st.Embedded = nil, 0
		}
	}
	if st.Method == "keywords" {
		if assign, err = s.offlineTopics(ctx, workspaceID, qs, sigs, kbs); err != nil {
			return nil, err
		}
	}
	return buildTopics(qs, sigs, assign, st), nil
}

// offlineTopics assigns each question to the knowledge-base document of its assistant it best
// matches, else to the group of its most common keyword (or pair of keywords).
func (s *Service) offlineTopics(ctx context.Context, workspaceID string, qs []question, sigs []signature, kbs map[string][]string) ([]*assignment, error) {
	assign := make([]*assignment, len(qs))
	idx, err := s.documentIndex(ctx, workspaceID, qs, kbs)
	if err != nil {
		return nil, err
	}
	var rest []int
	for i := range qs {
		if len(sigs[i].stems) == 0 {
			continue
		}
		if d := idx.best(sigs[i], kbs[qs[i].AssistantID]); d != nil {
			assign[i] = &assignment{key: "doc:" + d.id, label: d.title, kind: "document", docID: d.id}
			continue
		}
		rest = append(rest, i)
	}
	keywordGroups(rest, sigs, assign)
	return assign, nil
}

// keywordGroups puts each question of idx into the group of its keyword that the most questions
// share; a pair of neighbouring keywords ("gift card") wins when at least two questions share it
// and it is at least half as common as the best single keyword.
func keywordGroups(idx []int, sigs []signature, assign []*assignment) {
	df := map[string]int{}
	for _, i := range idx {
		for _, w := range sigs[i].stems {
			df[w]++
		}
		for _, b := range sigs[i].bigrams {
			df[b]++
		}
	}
	best := func(cands []string) (string, int) {
		var key string
		n := -1
		for _, c := range cands {
			if df[c] > n || df[c] == n && c < key {
				key, n = c, df[c]
			}
		}
		return key, n
	}
	for _, i := range idx {
		key, n := best(sigs[i].stems)
		if bi, bn := best(sigs[i].bigrams); bn >= 2 && 2*bn >= n {
			key = bi
		}
		assign[i] = &assignment{key: "kw:" + key, labelStems: key, kind: "keywords"}
	}
}

// docProfile is what a document is about: the stems of its title and of (the start of) its text.
type docProfile struct {
	id, kbID, title string
	titleStems      map[string]bool
	stems           map[string]bool
}

type docIndex struct {
	docs     []*docProfile
	postings map[string][]*docProfile
	idf      map[string]float64
}

// documentIndex reads the documents of the knowledge bases the questions' assistants use.
func (s *Service) documentIndex(ctx context.Context, workspaceID string, qs []question, kbs map[string][]string) (*docIndex, error) {
	idx := &docIndex{postings: map[string][]*docProfile{}, idf: map[string]float64{}}
	kbIDs := usedKnowledgeBases(qs, kbs)
	if len(kbIDs) == 0 {
		return idx, nil
	}
	texts, err := s.Source.KnowledgeTexts(ctx, workspaceID, kbIDs, maxKBDocuments, maxKBChunksPerDoc)
	if err != nil {
		return nil, err
	}
	for _, t := range texts {
		d := &docProfile{id: t.DocumentID, kbID: t.KnowledgeBaseID, title: t.Title, titleStems: map[string]bool{}, stems: map[string]bool{}}
		for _, k := range keywords(t.Title) {
			d.titleStems[k.stem] = true
			d.stems[k.stem] = true
		}
		for _, k := range keywords(t.Content) {
			d.stems[k.stem] = true
		}
		idx.docs = append(idx.docs, d)
		for w := range d.stems {
			idx.postings[w] = append(idx.postings[w], d)
		}
	}
	n := float64(len(idx.docs))
	for w, ds := range idx.postings {
		idx.idf[w] = math.Log(1 + n/float64(len(ds)))
	}
	return idx, nil
}

// usedKnowledgeBases lists (sorted) the knowledge bases of the assistants that asked questions.
func usedKnowledgeBases(qs []question, kbs map[string][]string) []string {
	seen := map[string]bool{}
	var out []string
	for _, q := range qs {
		for _, kb := range kbs[q.AssistantID] {
			if !seen[kb] {
				seen[kb] = true
				out = append(out, kb)
			}
		}
	}
	sort.Strings(out)
	return out
}

// best is the document of the knowledge bases kbIDs that the question matches best, or nil. A
// question matches a document when they share a keyword of its title or two keywords of any kind;
// the score weighs each shared keyword by its rarity among the documents (and titles three times).
func (idx *docIndex) best(sig signature, kbIDs []string) *docProfile {
	if len(kbIDs) == 0 || len(idx.docs) == 0 {
		return nil
	}
	allowed := make(map[string]bool, len(kbIDs))
	for _, id := range kbIDs {
		allowed[id] = true
	}
	type match struct {
		score         float64
		shared, title int
	}
	matches := map[*docProfile]*match{}
	for _, w := range sig.stems {
		for _, d := range idx.postings[w] {
			if !allowed[d.kbID] {
				continue
			}
			m := matches[d]
			if m == nil {
				m = &match{}
				matches[d] = m
			}
			m.shared++
			if d.titleStems[w] {
				m.title++
				m.score += titleWeight * idx.idf[w]
			} else {
				m.score += idx.idf[w]
			}
		}
	}
	var best *docProfile
	var bestScore float64
	for d, m := range matches {
		if m.title == 0 && m.shared < 2 {
			continue
		}
		if best == nil || m.score > bestScore || m.score == bestScore && (d.title < best.title || d.title == best.title && d.id < best.id) {
			best, bestScore = d, m.score
		}
	}
	return best
}

// embeddingTopics clusters the most asked distinct questions by embedding similarity: each joins
// the first cluster whose first question is alike enough, else starts one. A cluster is named by
// the knowledge-base passage nearest to it (its document's title) when one is alike enough, else
// by its keywords. It returns knowledge.ErrNoEmbeddings when the workspace has no embedding model.
func (s *Service) embeddingTopics(ctx context.Context, workspaceID string, qs []question, sigs []signature, kbs map[string][]string) ([]*assignment, int, error) {
	// Questions without a keyword ("hi") are not about anything: left out, as offline.
	freq := map[string]int{}
	for i, q := range qs {
		if len(sigs[i].stems) > 0 {
			freq[q.norm]++
		}
	}
	texts := make([]string, 0, len(freq))
	for t := range freq {
		texts = append(texts, t)
	}
	sort.Slice(texts, func(i, j int) bool {
		if freq[texts[i]] != freq[texts[j]] {
			return freq[texts[i]] > freq[texts[j]]
		}
		return texts[i] < texts[j]
	})
	if len(texts) > maxEmbedded {
		texts = texts[:maxEmbedded]
	}
	vecs := make([][]float32, 0, len(texts))
	for start := 0; start < len(texts); start += embedBatch {
		batch := texts[start:min(start+embedBatch, len(texts))]
		v, err := s.Embedder.Embed(ctx, workspaceID, batch)
		if err != nil {
			return nil, 0, err
		}
		if len(v) != len(batch) {
			return nil, 0, errors.New("the embedding model returned a different number of vectors")
		}
		for _, x := range v {
			vecs = append(vecs, unit(x))
		}
	}
	// Leader clustering, in the fixed order above: deterministic.
	var leaders []int
	cluster := make(map[string]int, len(texts))
	for i, v := range vecs {
		at, sim := -1, clusterSimilarity
		for c, l := range leaders {
			if x := dot(v, vecs[l]); x >= sim {
				at, sim = c, x
			}
		}
		if at < 0 {
			at = len(leaders)
			leaders = append(leaders, i)
		}
		cluster[texts[i]] = at
	}
	// Names from the knowledge bases' embedded passages, within each cluster's assistants' bases.
	kbIDs := usedKnowledgeBases(qs, kbs)
	var chunks []knowledge.Chunk
	if len(kbIDs) > 0 {
		var err error
		if chunks, err = s.Source.EmbeddedChunks(ctx, workspaceID, kbIDs, maxLabelChunks); err != nil {
			return nil, 0, err
		}
		for i := range chunks {
			chunks[i].Embedding = unit(chunks[i].Embedding)
		}
		sort.SliceStable(chunks, func(i, j int) bool { return chunks[i].Pk < chunks[j].Pk })
	}
	members := make([][]int, len(leaders))
	assistants := make([]map[string]bool, len(leaders))
	for i, q := range qs {
		c, ok := cluster[q.norm]
		if !ok || len(sigs[i].stems) == 0 {
			continue
		}
		members[c] = append(members[c], i)
		if assistants[c] == nil {
			assistants[c] = map[string]bool{}
		}
		for _, kb := range kbs[q.AssistantID] {
			assistants[c][kb] = true
		}
	}
	assign := make([]*assignment, len(qs))
	for c, l := range leaders {
		a := &assignment{kind: "embeddings"}
		var best *knowledge.Chunk
		bestSim := labelSimilarity
		for i := range chunks {
			ch := &chunks[i]
			if !assistants[c][ch.KnowledgeBaseID] {
				continue
			}
			if x := dot(vecs[l], ch.Embedding); x >= bestSim && (best == nil || x > bestSim) {
				best, bestSim = ch, x
			}
		}
		if best != nil {
			a.key, a.label, a.docID = "doc:"+best.DocumentID, best.Title, best.DocumentID
		} else {
			sub := make([]*assignment, len(qs))
			keywordGroups(members[c], sigs, sub)
			// The cluster's label is the keyword group most of its questions fall in.
			count := map[string]int{}
			var top string
			for _, i := range members[c] {
				if sub[i] == nil {
					continue
				}
				k := sub[i].key
				count[k]++
				if count[k] > count[top] || count[k] == count[top] && k < top {
					top = k
				}
			}
			a.key = "emb:" + texts[l]
			a.labelStems = strings.TrimPrefix(top, "kw:")
		}
		for _, i := range members[c] {
			assign[i] = a
		}
	}
	return assign, len(texts), nil
}

func unit(v []float32) []float32 {
	var n float64
	for _, x := range v {
		n += float64(x) * float64(x)
	}
	if n == 0 {
		return v
	}
	n = math.Sqrt(n)
	out := make([]float32, len(v))
	for i, x := range v {
		out[i] = float32(float64(x) / n)
	}
	return out
}

// dot is the cosine of two unit vectors (0 when their sizes differ).
func dot(a, b []float32) float64 {
	if len(a) != len(b) {
		return 0
	}
	var s float64
	for i := range a {
		s += float64(a[i]) * float64(b[i])
	}
	return s
}

// buildTopics turns the assignments into topics, the biggest first.
func buildTopics(qs []question, sigs []signature, assign []*assignment, st *QuestionStats) []Topic {
	// The word most often written for each stem names it.
	written := map[string]map[string]int{}
	for i := range sigs {
		for j, stem := range sigs[i].stems {
			if written[stem] == nil {
				written[stem] = map[string]int{}
			}
			written[stem][sigs[i].forms[j]]++
		}
	}
	word := func(stem string) string {
		best, n := stem, 0
		for w, c := range written[stem] {
			if c > n || c == n && w < best {
				best, n = w, c
			}
		}
		return best
	}
	phrase := func(key string) string {
		parts := strings.Fields(key)
		for i, p := range parts {
			parts[i] = word(p)
		}
		return strings.Join(parts, " ")
	}
	type group struct {
		a         *assignment
		members   []int
		stemCount map[string]int
	}
	groups := map[string]*group{}
	var keys []string
	for _, i := range byRecency(qs) {
		a := assign[i]
		if a == nil {
			continue
		}
		g := groups[a.key]
		if g == nil {
			g = &group{a: a, stemCount: map[string]int{}}
			groups[a.key] = g
			keys = append(keys, a.key)
		}
		g.members = append(g.members, i)
		for _, w := range sigs[i].stems {
			g.stemCount[w]++
		}
	}
	out := make([]Topic, 0, len(keys))
	for _, k := range keys {
		g := groups[k]
		t := Topic{Kind: g.a.kind, DocumentID: g.a.docID, Label: g.a.label, Count: len(g.members), ConversationIDs: []string{}, Keywords: []string{}, Examples: []string{}}
		if g.a.labelStems != "" {
			t.Label = phrase(g.a.labelStems)
		}
		if st.Scanned > 0 {
			t.Share = float64(t.Count) / float64(st.Scanned)
		}
		st.Grouped += t.Count
		stems := make([]string, 0, len(g.stemCount))
		for w := range g.stemCount {
			stems = append(stems, w)
		}
		sort.Slice(stems, func(i, j int) bool {
			if g.stemCount[stems[i]] != g.stemCount[stems[j]] {
				return g.stemCount[stems[i]] > g.stemCount[stems[j]]
			}
			return stems[i] < stems[j]
		})
		for _, w := range stems[:min(len(stems), maxTopicKeywords)] {
			t.Keywords = append(t.Keywords, word(w))
		}
		// Examples: distinct questions, the most asked first (ties: the most recent), as last written.
		asked := map[string]int{}
		var order []string
		text := map[string]string{}
		for _, i := range g.members {
			n := qs[i].norm
			if asked[n] == 0 {
				order = append(order, n)
				text[n] = strings.TrimSpace(qs[i].Text)
			}
			asked[n]++
			t.ConversationIDs = addID(t.ConversationIDs, qs[i].ConversationID)
		}
		sort.SliceStable(order, func(i, j int) bool { return asked[order[i]] > asked[order[j]] })
		for _, n := range order[:min(len(order), maxExamples)] {
			t.Examples = append(t.Examples, text[n])
		}
		out = append(out, t)
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Count != out[j].Count {
			return out[i].Count > out[j].Count
		}
		if li, lj := strings.ToLower(out[i].Label), strings.ToLower(out[j].Label); li != lj {
			return li < lj
		}
		if out[i].Label != out[j].Label {
			return out[i].Label < out[j].Label
		}
		return out[i].Kind < out[j].Kind
	})
	return out
}
