// Package secrets encrypts credentials at rest (WhatsApp access tokens and app secrets, provider API
// keys, HTTP tool headers) with AES-256-GCM under a key from PARLEY_SECRET_KEY, or one generated into
// the data directory on first start.
package secrets

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Box seals and opens secrets.
type Box struct{ aead cipher.AEAD }

const prefix = "v1:"

// New returns a box for key material (any length; it is hashed to 32 bytes).
func New(key []byte) (*Box, error) {
	if len(key) < 16 {
		return nil, errors.New("secret key must be at least 16 bytes")
	}
	k := sha256.Sum256(key)
	block, err := aes.NewCipher(k[:])
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &Box{aead: aead}, nil
}

// Load returns the box for PARLEY_SECRET_KEY when set, else for the key file in dataDir, creating
// it (0600) on first use.
func Load(envKey, dataDir string) (*Box, error) {
	if envKey != "" {
		return New([]byte(envKey))
	}
	path := filepath.Join(dataDir, "secret.key")
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		raw := make([]byte, 32)
		if _, err := rand.Read(raw); err != nil {
			return nil, err
		}
		enc := base64.StdEncoding.EncodeToString(raw)
		if err := os.MkdirAll(dataDir, 0o750); err != nil {
			return nil, fmt.Errorf("create data dir: %w", err)
		}
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if errors.Is(err, os.ErrExist) {
			return Load("", dataDir) // another process created it first
		}
		if err != nil {
			return nil, fmt.Errorf("create secret key file: %w", err)
		}
		if _, err := f.WriteString(enc + "\n"); err != nil {
			f.Close()
			return nil, err
		}
		if err := f.Close(); err != nil {
			return nil, err
		}
		return New([]byte(enc))
	}
	if err != nil {
		return nil, fmt.Errorf("read secret key file: %w", err)
	}
	return New([]byte(strings.TrimSpace(string(b))))
}

// Seal encrypts plaintext; "" stays "".
func (b *Box) Seal(plaintext string) (string, error) {
	if plaintext == "" {
		return "", nil
	}
	nonce := make([]byte, b.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return "", err
	}
	out := b.aead.Seal(nonce, nonce, []byte(plaintext), nil)
	return prefix + base64.StdEncoding.EncodeToString(out), nil
}

// Open decrypts what Seal made.
func (b *Box) Open(sealed string) (string, error) {
	if sealed == "" {
		return "", nil
	}
	raw, ok := strings.CutPrefix(sealed, prefix)
	if !ok {
		return "", errors.New("secret: unknown format")
	}
	data, err := base64.StdEncoding.DecodeString(raw)
	if err != nil {
		return "", fmt.Errorf("secret: %w", err)
	}
	n := b.aead.NonceSize()
	if len(data) < n {
		return "", errors.New("secret: too short")
	}
	plain, err := b.aead.Open(nil, data[:n], data[n:], nil)
	if err != nil {
		return "", errors.New("secret: cannot decrypt (was PARLEY_SECRET_KEY changed?)")
	}
	return string(plain), nil
}
