package auth

import (
	"context"
	"errors"
	"strings"
	"sync"

	"golang.org/x/crypto/bcrypt"
)

// ErrInvalidLogin is returned for an unknown email or a wrong password (never saying which).
var ErrInvalidLogin = errors.New("invalid email or password")

// UserLookup finds dashboard users by email.
type UserLookup interface {
	UserByEmail(ctx context.Context, email string) (User, error)
}

var (
	dummyOnce sync.Once
	dummyHash []byte
)

// VerifyPassword returns the user with email when password is theirs. An unknown email costs the
// same bcrypt comparison as a known one, so timing does not tell which emails exist.
func VerifyPassword(ctx context.Context, users UserLookup, email, password string) (User, error) {
	email = strings.ToLower(strings.TrimSpace(email))
	u, err := users.UserByEmail(ctx, email)
	if err != nil || len(password) > 72 {
		dummyOnce.Do(func() {
			dummyHash, _ = bcrypt.GenerateFromPassword([]byte("parley-dummy-password"), bcrypt.DefaultCost)
		})
		_ = bcrypt.CompareHashAndPassword(dummyHash, []byte(password))
		return User{}, ErrInvalidLogin
	}
	if bcrypt.CompareHashAndPassword([]byte(u.PasswordHash), []byte(password)) != nil {
		return User{}, ErrInvalidLogin
	}
	return u, nil
}
