// Package ids makes the opaque identifiers Parley hands out: UUIDv7, so they sort by creation time.
package ids

import "github.com/google/uuid"

// New returns a new time-ordered id.
func New() string {
	return uuid.Must(uuid.NewV7()).String()
}
