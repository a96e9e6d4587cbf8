package blob

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// S3Config names an S3-compatible bucket (AWS S3, MinIO, R2, …).
type S3Config struct {
	Endpoint  string // host[:port], e.g. s3.amazonaws.com or minio:9000
	Bucket    string
	Region    string
	AccessKey string
	SecretKey string
	Prefix    string // key prefix inside the bucket
	Insecure  bool   // plain HTTP (a local MinIO)
	PathStyle bool   // bucket in the path rather than the host name
}

// S3ConfigFromEnv reads PARLEY_S3_ENDPOINT, PARLEY_S3_BUCKET, PARLEY_S3_REGION,
// PARLEY_S3_ACCESS_KEY, PARLEY_S3_SECRET_KEY, PARLEY_S3_PREFIX, PARLEY_S3_INSECURE=1 and
// PARLEY_S3_PATH_STYLE=1; ok is false when no bucket is configured (media stay on disk).
func S3ConfigFromEnv() (S3Config, bool) {
	c := S3Config{
		Endpoint: os.Getenv("PARLEY_S3_ENDPOINT"), Bucket: os.Getenv("PARLEY_S3_BUCKET"), Region: os.Getenv("PARLEY_S3_REGION"),
		AccessKey: os.Getenv("PARLEY_S3_ACCESS_KEY"), SecretKey: os.Getenv("PARLEY_S3_SECRET_KEY"), Prefix: os.Getenv("PARLEY_S3_PREFIX"),
		Insecure: os.Getenv("PARLEY_S3_INSECURE") == "1", PathStyle: os.Getenv("PARLEY_S3_PATH_STYLE") == "1",
	}
	if c.Endpoint == "" {
		c.Endpoint = "s3.amazonaws.com"
	}
	return c, c.Bucket != ""
}

// S3 is a Store in an S3-compatible bucket, through minio-go.
type S3 struct {
	client *minio.Client
	bucket string
	prefix string
}

// NewS3 connects to the bucket (no network call until first use).
func NewS3(c S3Config) (*S3, error) {
	if c.Bucket == "" {
		return nil, errors.New("s3: bucket is required")
	}
	opts := &minio.Options{Creds: credentials.NewStaticV4(c.AccessKey, c.SecretKey, ""), Secure: !c.Insecure, Region: c.Region}
	if c.PathStyle {
		opts.BucketLookup = minio.BucketLookupPath
	}
	client, err := minio.New(c.Endpoint, opts)
	if err != nil {
		return nil, fmt.Errorf("s3: %w", err)
	}
	return &S3{client: client, bucket: c.Bucket, prefix: strings.Trim(c.Prefix, "/")}, nil
}

func (s *S3) key(key string) (string, error) {
	if key == "" || strings.Contains(key, "..") || strings.HasPrefix(key, "/") {
		return "", fmt.Errorf("blob: invalid key %q", key)
	}
	if s.prefix == "" {
		return key, nil
	}
	return s.prefix + "/" + key, nil
}

// Put spools the content to a temporary file (so the size is known and a too-large file is
// refused before anything is uploaded), then uploads it in one request.
func (s *S3) Put(ctx context.Context, key string, r io.Reader, maxBytes int64) (int64, error) {
	k, err := s.key(key)
	if err != nil {
		return 0, err
	}
	f, err := os.CreateTemp("", "parley-blob-*")
	if err != nil {
		return 0, fmt.Errorf("s3: spool: %w", err)
	}
	defer os.Remove(f.Name())
	defer f.Close()
	n, err := io.Copy(f, io.LimitReader(r, maxBytes+1))
	if err != nil {
		return 0, fmt.Errorf("s3: spool: %w", err)
	}
	if n > maxBytes {
		return 0, ErrTooLarge
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return 0, err
	}
	if _, err := s.client.PutObject(ctx, s.bucket, k, f, n, minio.PutObjectOptions{ContentType: "application/octet-stream"}); err != nil {
		return 0, fmt.Errorf("s3: put %s: %w", k, err)
	}
	return n, nil
}

// Open streams an object; ErrNotFound when there is none.
func (s *S3) Open(ctx context.Context, key string) (io.ReadCloser, error) {
	k, err := s.key(key)
	if err != nil {
		return nil, err
	}
	obj, err := s.client.GetObject(ctx, s.bucket, k, minio.GetObjectOptions{})
	if err != nil {
		return nil, fmt.Errorf("s3: get %s: %w", k, err)
	}
	if _, err := obj.Stat(); err != nil {
		obj.Close()
		if minio.ToErrorResponse(err).StatusCode == http.StatusNotFound || minio.ToErrorResponse(err).Code == "NoSuchKey" {
			return nil, ErrNotFound
		}
		return nil, fmt.Errorf("s3: stat %s: %w", k, err)
	}
	return obj, nil
}

// Delete removes an object (deleting a missing one is not an error).
func (s *S3) Delete(ctx context.Context, key string) error {
	k, err := s.key(key)
	if err != nil {
		return err
	}
	if err := s.client.RemoveObject(ctx, s.bucket, k, minio.RemoveObjectOptions{}); err != nil {
		return fmt.Errorf("s3: delete %s: %w", k, err)
	}
	return nil
}
