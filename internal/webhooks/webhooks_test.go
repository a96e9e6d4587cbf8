package webhooks

import (
	"context"
	"strings"
	"testing"
)

func TestSign(t *testing.T) {
	// The same scheme as Meta's X-Hub-Signature-256 (reference vector from courier's tests).
	if got := Sign([]byte("hello world"), "sesame"); got != "sha256=f39034b29165ec6a5104d9aef27266484ab26c8caa7bca8bcb2dd02e8be61b17" {
		t.Fatalf("Sign = %s", got)
	}
}

type memRepo struct{ hooks []*Webhook }

func (m *memRepo) CreateWebhook(_ context.Context, h *Webhook) error {
	m.hooks = append(m.hooks, h)
	return nil
}
func (m *memRepo) ListWebhooks(context.Context, string) ([]*Webhook, error) {
	return m.hooks, nil
}
func (m *memRepo) GetWebhook(context.Context, string, string) (*Webhook, error) { return nil, nil }
func (m *memRepo) WebhookWorkspaces(context.Context) ([]string, error)          { return nil, nil }

type plainBox struct{}

func (plainBox) Seal(s string) (string, error) { return "sealed:" + s, nil }
func (plainBox) Open(s string) (string, error) { return strings.TrimPrefix(s, "sealed:"), nil }

func TestCreateValidates(t *testing.T) {
	repo := &memRepo{}
	s := &Service{Repo: repo, Box: plainBox{}}
	cases := []struct {
		url    string
		events []string
		ok     bool
	}{
		{"https://hooks.example/parley", []string{"message.created"}, true},
		{"https://hooks.example/parley", nil, true},
		{"ftp://hooks.example", nil, false},
		{"not a url", nil, false},
		{"https://hooks.example", []string{"message.deleted"}, false},
	}
	for _, c := range cases {
		h, err := s.Create(context.Background(), "ws", c.url, c.events)
		if (err == nil) != c.ok {
			t.Errorf("%s %v: err %v", c.url, c.events, err)
		}
		if err == nil && (!strings.HasPrefix(h.Secret, "whsec_") || len(h.Events) == 0) {
			t.Errorf("created %+v", h)
		}
	}
	for _, h := range repo.hooks {
		if !strings.HasPrefix(h.Secret, "sealed:") {
			t.Fatalf("secret stored unsealed: %q", h.Secret)
		}
	}
	if len(repo.hooks[1].Events) != len(AllEvents) {
		t.Fatalf("default events %v", repo.hooks[1].Events)
	}
}
