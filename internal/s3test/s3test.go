// Package s3test gives tests a client of the real S3 server that
// .ci/services.sh starts (versitygw on loopback) and a fresh bucket per
// test. Like package testenv, it skips the test when the server is not
// configured and fails it under CI=true.
package s3test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"io"
	mrand "math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go/logging"

	"github.com/enc-pipe/enc-pipe/internal/testenv"
)

// Variables that .ci/services.sh exports besides testenv.S3.
const (
	AccessKey = "ENCPIPE_TEST_S3_ACCESS_KEY"
	SecretKey = "ENCPIPE_TEST_S3_SECRET_KEY"
)

// Endpoint returns the URL of the test server (http://127.0.0.1:PORT).
func Endpoint(t testing.TB) string {
	t.Helper()
	return testenv.Var(t, testenv.S3)
}

// Client returns a path-style client of the test server at endpoint
// (Endpoint(t), or a proxy in front of it).
func Client(t testing.TB, endpoint string) *s3.Client {
	t.Helper()
	ak, sk := testenv.Var(t, AccessKey), testenv.Var(t, SecretKey)
	return s3.New(s3.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(endpoint),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(ak, sk, ""),
		Logger:       logging.Nop{},
	})
}

// Bucket creates a bucket with a unique name for this test and removes it,
// with every object and incomplete multipart upload in it, when the test
// ends.
func Bucket(t testing.TB, c *s3.Client) string {
	t.Helper()
	var rnd [6]byte
	rand.Read(rnd[:])
	prefix := strings.ToLower(t.Name())
	prefix = strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			return r
		}
		return '-'
	}, prefix)
	if len(prefix) > 40 {
		prefix = prefix[:40]
	}
	name := strings.Trim("ep-"+prefix, "-") + "-" + hex.EncodeToString(rnd[:])
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: &name}); err != nil {
		t.Fatalf("create bucket %s: %v", name, err)
	}
	t.Cleanup(func() { Empty(t, c, name, true) })
	return name
}

// Empty deletes every object and aborts every multipart upload in bucket,
// then deletes the bucket if del is set.
func Empty(t testing.TB, c *s3.Client, bucket string, del bool) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, u := range Uploads(t, c, bucket, "") {
		c.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{Bucket: &bucket, Key: u.Key, UploadId: u.UploadId})
	}
	p := s3.NewListObjectsV2Paginator(c, &s3.ListObjectsV2Input{Bucket: &bucket})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			t.Errorf("list %s: %v", bucket, err)
			return
		}
		for _, o := range page.Contents {
			if _, err := c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &bucket, Key: o.Key}); err != nil {
				t.Errorf("delete %s/%s: %v", bucket, *o.Key, err)
			}
		}
	}
	if del {
		if _, err := c.DeleteBucket(ctx, &s3.DeleteBucketInput{Bucket: &bucket}); err != nil {
			t.Errorf("delete bucket %s: %v", bucket, err)
		}
	}
}

// Uploads lists the incomplete multipart uploads under prefix.
func Uploads(t testing.TB, c *s3.Client, bucket, prefix string) []types.MultipartUpload {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var all []types.MultipartUpload
	in := &s3.ListMultipartUploadsInput{Bucket: &bucket, Prefix: &prefix}
	for {
		out, err := c.ListMultipartUploads(ctx, in)
		if err != nil {
			t.Fatalf("list multipart uploads of %s: %v", bucket, err)
		}
		all = append(all, out.Uploads...)
		if !aws.ToBool(out.IsTruncated) {
			return all
		}
		in.KeyMarker, in.UploadIdMarker = out.NextKeyMarker, out.NextUploadIdMarker
	}
}

// Exists reports whether bucket/key exists (HeadObject).
func Exists(t testing.TB, c *s3.Client, bucket, key string) bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &bucket, Key: &key})
	if err == nil {
		return true
	}
	var nf *types.NotFound
	var nsk *types.NoSuchKey
	if errors.As(err, &nf) || errors.As(err, &nsk) {
		return false
	}
	t.Fatalf("head %s/%s: %v", bucket, key, err)
	return false
}

// Put stores data as bucket/key with one PutObject.
func Put(t testing.TB, c *s3.Client, bucket, key string, data []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: &bucket, Key: &key, Body: bytes.NewReader(data)}); err != nil {
		t.Fatalf("put %s/%s: %v", bucket, key, err)
	}
}

// Get returns the whole of bucket/key.
func Get(t testing.TB, c *s3.Client, bucket, key string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	out, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: &bucket, Key: &key})
	if err != nil {
		t.Fatalf("get %s/%s: %v", bucket, key, err)
	}
	defer out.Body.Close()
	b, err := io.ReadAll(out.Body)
	if err != nil {
		t.Fatalf("get %s/%s: %v", bucket, key, err)
	}
	return b
}

// Random returns n pseudo-random bytes from seed.
func Random(seed uint64, n int) []byte {
	b := make([]byte, n)
	var s [32]byte
	binary.LittleEndian.PutUint64(s[:], seed)
	mrand.NewChaCha8(s).Read(b)
	return b
}
