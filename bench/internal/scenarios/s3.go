package scenarios

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"os"

	"github.com/enc-pipe/enc-pipe/bench/internal/results"
)

// The S3 server of the test servers (. /tmp/encpipe-ci/env.sh) and its
// credentials.
const (
	envS3          = "ENCPIPE_TEST_S3"
	envS3AccessKey = "ENCPIPE_TEST_S3_ACCESS_KEY"
	envS3SecretKey = "ENCPIPE_TEST_S3_SECRET_KEY"
)

// s3MaxSize caps the object size: every run uploads a new object to a
// server that keeps it on disk.
const s3MaxSize = 256 << 20

// s3State is what the S3 scenario's Setup leaves for its commands.
type s3State struct {
	endpoint, bucket string
	in               string // the uploaded file
	size             int64
}

func (s *s3State) url(key string) string { return "s3://" + s.bucket + "/" + key }

func (s *s3State) tool(e *Env, mode string, args ...string) []string {
	return append([]string{e.Tool("s3bench"), "-endpoint", s.endpoint, "-mode", mode}, args...)
}

func (s *s3State) cli(e *Env, args ...string) []string {
	return e.cliArgs(append([]string{"--s3-endpoint", s.endpoint, "--s3-region", "us-east-1"}, args...)...)
}

// S3 is enc-pipe's S3 sink and source against a plain aws-sdk-go-v2
// multipart upload, download and copy of the same object, on the S3
// server of the test servers.
func S3() Def {
	s := &s3State{}
	return Def{
		ID:    "s3",
		Group: "S3",
		Title: "S3: enc-pipe encrypt file → s3://, s3:// → s3:// and decrypt s3:// → /dev/null vs a plain copy",
		About: "The versitygw S3 server of the test servers on loopback (a POSIX backend on local disk, sharing the 2 CPUs with the clients). " +
			"The object is the first min(SIZE, 256 MiB) bytes of the random input. enc-pipe's S3 output is a streaming multipart upload of 8 MiB parts, 4 in flight " +
			"(its defaults), with CRC32 checksums; its S3 input is one GetObject read as a stream. `s3-put`, `s3-get` and `s3-copy` are bench/cmd/s3bench: " +
			"the same SDK client settings, the same part size, concurrency and checksums, no encryption; `s3-copy` streams a GetObject into the multipart upload " +
			"(not a server-side CopyObject, which moves no bytes through the client). Every run overwrites its own key. " +
			"Before the rounds every path is checked to give back the input (SHA-256 of decrypt or download).",
		Available: func(e *Env) string {
			if os.Getenv(envS3) == "" {
				return envS3 + " is not set (no S3 server: . /tmp/encpipe-ci/env.sh)"
			}
			if os.Getenv("AWS_ACCESS_KEY_ID") == "" && os.Getenv(envS3AccessKey) == "" {
				return "no S3 credentials: neither AWS_ACCESS_KEY_ID nor " + envS3AccessKey + " is set"
			}
			return ""
		},
		Setup: func(ctx context.Context, e *Env, x Exec) error {
			s.endpoint = os.Getenv(envS3)
			// The CLI and s3bench take credentials from the default
			// AWS chain: give them the test server's if none are set.
			if os.Getenv("AWS_ACCESS_KEY_ID") == "" {
				os.Setenv("AWS_ACCESS_KEY_ID", os.Getenv(envS3AccessKey))
				os.Setenv("AWS_SECRET_ACCESS_KEY", os.Getenv(envS3SecretKey))
			}
			os.Setenv("AWS_EC2_METADATA_DISABLED", "true")
			var rnd [4]byte
			rand.Read(rnd[:])
			s.bucket = "encpipe-bench-" + hex.EncodeToString(rnd[:])
			s.in, s.size = e.Input, e.Size
			want := e.InputSum
			if e.Size > s3MaxSize {
				s.in, s.size = e.Path("in.s3"), s3MaxSize
				if err := copyPrefix(e.Input, s.in, s3MaxSize); err != nil {
					return err
				}
				sum, err := x.Sum(ctx, "cat", s.in)
				if err != nil {
					return err
				}
				want = sum
			}
			if _, err := x.Run(ctx, s.tool(e, "mb", "-bucket", s.bucket)...); err != nil {
				return err
			}
			for _, step := range [][]string{
				s.tool(e, "copy", "-in", s.in, "-out", s.url("plain")),
				s.cli(e, "encrypt", "-i", s.in, "-o", s.url("enc")),
				s.tool(e, "copy", "-in", s.url("plain"), "-out", s.url("check-copy")),
				s.cli(e, "encrypt", "-i", s.url("plain"), "-o", s.url("check-enc-copy")),
			} {
				if _, err := x.Run(ctx, step...); err != nil {
					return err
				}
			}
			for _, argv := range [][]string{
				s.tool(e, "copy", "-in", s.url("plain")),
				s.tool(e, "copy", "-in", s.url("check-copy")),
				s.cli(e, "decrypt", "-i", s.url("enc")),
				s.cli(e, "decrypt", "-i", s.url("check-enc-copy")),
			} {
				sum, err := x.Sum(ctx, argv...)
				if err != nil {
					return err
				}
				if sum != want {
					return fmt.Errorf("%s: output differs from the input", shJoin(argv))
				}
			}
			return nil
		},
		Teardown: func(ctx context.Context, e *Env, x Exec) error {
			if s.bucket == "" {
				return nil
			}
			_, err := x.Run(ctx, s.tool(e, "rb", "-bucket", s.bucket)...)
			return err
		},
		Commands: func(e *Env) []Command {
			b := float64(min(e.Size, s3MaxSize))
			in := e.Input
			if e.Size > s3MaxSize {
				in = e.Path("in.s3")
			}
			return []Command{
				{Name: "s3-put", Label: "plain multipart upload, file → s3://", Argv: s.tool(e, "copy", "-in", in, "-out", s.url("put")), Bytes: b},
				{Name: "s3-enc-put", Label: "enc-pipe encrypt file → s3://", Argv: s.cli(e, "encrypt", "-i", in, "-o", s.url("enc-put")), Bytes: b},
				{Name: "s3-get", Label: "plain GetObject s3:// → /dev/null", Argv: s.tool(e, "copy", "-in", s.url("plain")), Bytes: b},
				{Name: "s3-dec-get", Label: "enc-pipe decrypt s3:// → /dev/null", Argv: s.cli(e, "decrypt", "-i", s.url("enc"), "-o", "/dev/null"), Bytes: b},
				{Name: "s3-copy", Label: "plain streaming copy s3:// → s3://", Argv: s.tool(e, "copy", "-in", s.url("plain"), "-out", s.url("copy")), Bytes: b},
				{Name: "s3-enc-copy", Label: "enc-pipe encrypt s3:// → s3://", Argv: s.cli(e, "encrypt", "-i", s.url("plain"), "-o", s.url("enc-copy")), Bytes: b},
			}
		},
		Ratios: func(e *Env) []results.Ratio {
			return []results.Ratio{
				{Num: "s3-enc-put", Den: []string{"s3-put"}, Label: "upload, encrypted vs plain"},
				{Num: "s3-dec-get", Den: []string{"s3-get"}, Label: "download, decrypted vs plain"},
				{Num: "s3-enc-copy", Den: []string{"s3-copy"}, Goal: ge(0.8), Label: "issue 11: S3 → S3 encryption ≥ 0.8× a plain streaming copy"},
			}
		},
	}
}

// copyPrefix writes the first n bytes of src to dst.
func copyPrefix(src, dst string, n int64) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.CopyN(out, in, n); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
