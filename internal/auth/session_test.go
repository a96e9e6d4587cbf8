package auth

import (
	"context"
	"errors"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

type users map[string]User

func (u users) UserByEmail(_ context.Context, email string) (User, error) {
	if x, ok := u[email]; ok {
		return x, nil
	}
	return User{}, errors.New("not found")
}

func TestVerifyPassword(t *testing.T) {
	hash, err := bcrypt.GenerateFromPassword([]byte("s3cret-pass"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	db := users{"ana@example.com": {ID: "u1", Email: "ana@example.com", PasswordHash: string(hash)}}
	cases := []struct {
		name, email, password string
		ok                    bool
	}{
		{"right", "ana@example.com", "s3cret-pass", true},
		{"email case and spaces", "  Ana@Example.COM ", "s3cret-pass", true},
		{"wrong password", "ana@example.com", "s3cret-pasS", false},
		{"unknown email", "bob@example.com", "s3cret-pass", false},
		{"empty password", "ana@example.com", "", false},
		{"longer than bcrypt reads", "ana@example.com", "s3cret-pass" + string(make([]byte, 80)), false},
	}
	for _, c := range cases {
		u, err := VerifyPassword(context.Background(), db, c.email, c.password)
		if c.ok && (err != nil || u.ID != "u1") {
			t.Errorf("%s: %v", c.name, err)
		}
		if !c.ok && !errors.Is(err, ErrInvalidLogin) {
			t.Errorf("%s: err %v, want ErrInvalidLogin", c.name, err)
		}
	}
}
