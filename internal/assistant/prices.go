package assistant

import (
	"context"
	"sort"
	"strings"
	"time"

	"github.com/parley-hq/parley/internal/llm"
)

// Price is a model's price in integer micro-dollars: per million input and output tokens, and per
// audio minute for transcription models.
type Price struct {
	Model           string
	InputMicros     int64
	OutputMicros    int64
	PerMinuteMicros int64
	Default         bool // a built-in default, not set by the workspace
	UpdatedAt       time.Time
}

// StaticPrices is a price table in micro-dollars per million tokens (input, output).
type StaticPrices map[string][2]int64

// DefaultPrices are list prices of common models (USD per million tokens, input/output, as micros).
var DefaultPrices = StaticPrices{
	"builtin":       {0, 0},
	"gpt-4o":        {2_500_000, 10_000_000},
	"gpt-4o-mini":   {150_000, 600_000},
	"gpt-4.1":       {2_000_000, 8_000_000},
	"gpt-4.1-mini":  {400_000, 1_600_000},
	"gpt-4.1-nano":  {100_000, 400_000},
	"gpt-5":         {1_250_000, 10_000_000},
	"gpt-5-mini":    {250_000, 2_000_000},
	"gpt-5-nano":    {50_000, 400_000},
	"o4-mini":       {1_100_000, 4_400_000},
	"o3":            {2_000_000, 8_000_000},
	"gpt-3.5-turbo": {500_000, 1_500_000},
	// embeddings: input only
	"text-embedding-3-small": {20_000, 0},
	"text-embedding-3-large": {130_000, 0},
}

// DefaultMinutePrices are transcription prices per audio minute, in micro-dollars.
var DefaultMinutePrices = map[string]int64{
	"whisper-1":              6_000,
	"gpt-4o-transcribe":      6_000,
	"gpt-4o-mini-transcribe": 3_000,
}

// Cost prices usage; unknown models cost nothing (and are visible as zero-cost in the dashboard).
func (p StaticPrices) Cost(_ context.Context, _ string, model string, u llm.Usage) int64 {
	price, ok := p.lookup(model)
	if !ok {
		return 0
	}
	return CostMicros(price[0], price[1], u)
}

// lookup finds a model's price, also for dated or tagged names ("gpt-4o-2024-08-06" is gpt-4o):
// the longest known name the model starts with.
func (p StaticPrices) lookup(model string) ([2]int64, bool) {
	if v, ok := p[model]; ok {
		return v, true
	}
	best := ""
	for name := range p {
		if len(name) > len(best) && strings.HasPrefix(model, name+"-") {
			best = name
		}
	}
	if best == "" {
		return [2]int64{}, false
	}
	return p[best], true
}

// CostMicros computes integer micro-dollars from per-million prices, rounding once at the end.
func CostMicros(inPerMillion, outPerMillion int64, u llm.Usage) int64 {
	return (u.InputTokens*inPerMillion + u.OutputTokens*outPerMillion + 500_000) / 1_000_000
}

// MinuteCostMicros prices seconds of audio at a per-minute price, rounding once at the end.
func MinuteCostMicros(perMinute int64, seconds float64) int64 {
	if seconds <= 0 || perMinute <= 0 {
		return 0
	}
	ms := int64(seconds*1000 + 0.5)
	return (ms*perMinute + 30_000) / 60_000
}

// PriceRepository reads and writes a workspace's own prices.
type PriceRepository interface {
	WorkspacePrice(ctx context.Context, workspaceID, model string) (*Price, error) // nil, nil when unset
	WorkspacePrices(ctx context.Context, workspaceID string) ([]Price, error)
	SetWorkspacePrice(ctx context.Context, workspaceID string, p Price) error
}

// Prices is the price book: the workspace's own prices over the defaults.
type Prices struct {
	Repo PriceRepository
	Log  interface {
		Warn(msg string, args ...any)
	}
}

// Price returns the price that applies to model in the workspace.
func (p *Prices) Price(ctx context.Context, workspaceID, model string) (Price, bool) {
	if p.Repo != nil {
		wp, err := p.Repo.WorkspacePrice(ctx, workspaceID, model)
		if err != nil && p.Log != nil {
			p.Log.Warn("prices: reading the workspace's price failed; using the default", "model", model, "err", err)
		}
		if err == nil && wp != nil {
			return *wp, true
		}
	}
	if v, ok := DefaultPrices.lookup(model); ok {
		return Price{Model: model, InputMicros: v[0], OutputMicros: v[1], PerMinuteMicros: DefaultMinutePrices[model], Default: true}, true
	}
	if m, ok := DefaultMinutePrices[model]; ok {
		return Price{Model: model, PerMinuteMicros: m, Default: true}, true
	}
	return Price{Model: model, Default: true}, false
}

// Cost prices a model call's usage (PriceBook).
func (p *Prices) Cost(ctx context.Context, workspaceID, model string, u llm.Usage) int64 {
	if model == llm.BuiltinModel {
		return 0
	}
	price, _ := p.Price(ctx, workspaceID, model)
	return CostMicros(price.InputMicros, price.OutputMicros, u)
}

// AudioCost prices a transcription of seconds of audio.
func (p *Prices) AudioCost(ctx context.Context, workspaceID, model string, seconds float64) int64 {
	price, _ := p.Price(ctx, workspaceID, model)
	return MinuteCostMicros(price.PerMinuteMicros, seconds)
}

// List returns the defaults with the workspace's own prices over them, by model name.
func (p *Prices) List(ctx context.Context, workspaceID string) ([]Price, error) {
	byModel := map[string]Price{}
	for m, v := range DefaultPrices {
		byModel[m] = Price{Model: m, InputMicros: v[0], OutputMicros: v[1], PerMinuteMicros: DefaultMinutePrices[m], Default: true}
	}
	for m, v := range DefaultMinutePrices {
		if _, ok := byModel[m]; !ok {
			byModel[m] = Price{Model: m, PerMinuteMicros: v, Default: true}
		}
	}
	if p.Repo != nil {
		own, err := p.Repo.WorkspacePrices(ctx, workspaceID)
		if err != nil {
			return nil, err
		}
		for _, w := range own {
			byModel[w.Model] = w
		}
	}
	out := make([]Price, 0, len(byModel))
	for _, v := range byModel {
		out = append(out, v)
	}
	sort.Slice(out, func(a, b int) bool { return out[a].Model < out[b].Model })
	return out, nil
}
