// Package auth holds workspaces, API keys, dashboard users and their verification.
package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/base64"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/parley-hq/parley/internal/ids"
)

// Workspace is a tenant: every record belongs to exactly one.
type Workspace struct {
	ID        string
	Slug      string
	Name      string
	CreatedAt time.Time
}

// APIKey is a stored key: only its public prefix and a bcrypt hash of the whole key are kept.
type APIKey struct {
	ID          string
	WorkspaceID string
	Name        string
	Prefix      string
	Hash        string
	CreatedAt   time.Time
	RevokedAt   *time.Time
}

// User is a dashboard user.
type User struct {
	ID           string
	Email        string
	PasswordHash string
	CreatedAt    time.Time
}

// Repository is what auth needs from the store.
type Repository interface {
	EnsureWorkspace(ctx context.Context, ws Workspace) (Workspace, error)
	WorkspaceBySlug(ctx context.Context, slug string) (Workspace, error)
	CreateAPIKey(ctx context.Context, key APIKey) error
	APIKeyByPrefix(ctx context.Context, prefix string) (APIKey, error)
	CreateUser(ctx context.Context, u User, workspaceID, role string) error
}

// ErrInvalidKey is returned for a missing, malformed, unknown or revoked API key.
var ErrInvalidKey = errors.New("invalid API key")

// Service issues and verifies credentials.
type Service struct {
	repo Repository
	// bcrypt is deliberately slow; a verified key is remembered (by its SHA-256) for a short while so
	// that each request does not pay for it. A revoked key stops working within cacheTTL everywhere.
	mu    sync.Mutex
	cache map[[32]byte]cachedKey
	cost  int
}

type cachedKey struct {
	workspaceID string
	expires     time.Time
}

const cacheTTL = time.Minute

// NewService returns the auth service over repo.
func NewService(repo Repository) *Service {
	return &Service{repo: repo, cache: map[[32]byte]cachedKey{}, cost: bcrypt.DefaultCost}
}

var slugPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)

// EnsureWorkspace returns the workspace with slug, creating it when missing.
func (s *Service) EnsureWorkspace(ctx context.Context, slug string) (Workspace, error) {
	if !slugPattern.MatchString(slug) {
		return Workspace{}, fmt.Errorf("workspace slug %q: use lowercase letters, digits and dashes", slug)
	}
	return s.repo.EnsureWorkspace(ctx, Workspace{ID: ids.New(), Slug: slug, Name: slug, CreatedAt: time.Now().UTC()})
}

var b32 = base32.StdEncoding.WithPadding(base32.NoPadding)

// CreateAPIKey makes a new key for the workspace and returns it in clear, the only time it is seen.
func (s *Service) CreateAPIKey(ctx context.Context, workspaceID, name string) (string, APIKey, error) {
	var pre [8]byte
	var secret [32]byte
	if _, err := rand.Read(pre[:]); err != nil {
		return "", APIKey{}, err
	}
	if _, err := rand.Read(secret[:]); err != nil {
		return "", APIKey{}, err
	}
	prefix := strings.ToLower(b32.EncodeToString(pre[:]))
	clear := "prl_" + prefix + "_" + base64.RawURLEncoding.EncodeToString(secret[:])
	hash, err := bcrypt.GenerateFromPassword(keyDigest(clear), s.cost)
	if err != nil {
		return "", APIKey{}, fmt.Errorf("hash key: %w", err)
	}
	key := APIKey{ID: ids.New(), WorkspaceID: workspaceID, Name: name, Prefix: prefix, Hash: string(hash), CreatedAt: time.Now().UTC()}
	if err := s.repo.CreateAPIKey(ctx, key); err != nil {
		return "", APIKey{}, err
	}
	return clear, key, nil
}

// keyDigest is what bcrypt hashes: the SHA-256 of the key, hex-free and under bcrypt's 72-byte limit.
func keyDigest(clear string) []byte {
	d := sha256.Sum256([]byte(clear))
	return []byte(base64.RawStdEncoding.EncodeToString(d[:]))
}

// VerifyAPIKey returns the workspace id the key belongs to.
func (s *Service) VerifyAPIKey(ctx context.Context, clear string) (string, error) {
	parts := strings.SplitN(clear, "_", 3)
	if len(parts) != 3 || parts[0] != "prl" || parts[1] == "" || parts[2] == "" {
		return "", ErrInvalidKey
	}
	sum := sha256.Sum256([]byte(clear))
	now := time.Now()
	s.mu.Lock()
	c, ok := s.cache[sum]
	s.mu.Unlock()
	if ok && now.Before(c.expires) {
		return c.workspaceID, nil
	}
	key, err := s.repo.APIKeyByPrefix(ctx, parts[1])
	if err != nil || key.RevokedAt != nil {
		return "", ErrInvalidKey
	}
	if bcrypt.CompareHashAndPassword([]byte(key.Hash), keyDigest(clear)) != nil {
		return "", ErrInvalidKey
	}
	s.mu.Lock()
	if len(s.cache) > 10000 { // bound memory: a full cache is simply started afresh
		s.cache = map[[32]byte]cachedKey{}
	}
	s.cache[sum] = cachedKey{workspaceID: key.WorkspaceID, expires: now.Add(cacheTTL)}
	s.mu.Unlock()
	return key.WorkspaceID, nil
}

var emailPattern = regexp.MustCompile(`^[^@\s]+@[^@\s]+\.[^@\s]+$`)

// CreateUser makes a dashboard user, admin of the workspace.
func (s *Service) CreateUser(ctx context.Context, email, password, workspaceID string) (User, error) {
	email = strings.ToLower(strings.TrimSpace(email))
	if !emailPattern.MatchString(email) {
		return User{}, fmt.Errorf("email %q is not a valid address", email)
	}
	if len(password) < 8 {
		return User{}, errors.New("password must be at least 8 characters")
	}
	if len(password) > 72 {
		return User{}, errors.New("password must be at most 72 bytes")
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(password), s.cost)
	if err != nil {
		return User{}, err
	}
	u := User{ID: ids.New(), Email: email, PasswordHash: string(hash), CreatedAt: time.Now().UTC()}
	return u, s.repo.CreateUser(ctx, u, workspaceID, "admin")
}

type ctxKey struct{}

// WithWorkspace returns ctx carrying the authenticated workspace id.
func WithWorkspace(ctx context.Context, workspaceID string) context.Context {
	return context.WithValue(ctx, ctxKey{}, workspaceID)
}

// WorkspaceID returns the authenticated workspace id from ctx ("" when none).
func WorkspaceID(ctx context.Context) string {
	v, _ := ctx.Value(ctxKey{}).(string)
	return v
}
