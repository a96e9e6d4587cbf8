//go:build !unix

package store

import "os"

// lockFile opens path; without flock(2) nothing keeps a second process out.
func lockFile(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o640)
}
