// Command s3bench is the S3 scenario's helper and baseline: a plain copy
// through aws-sdk-go-v2 with the settings of enc-pipe's S3 sink and source.
//
//	s3bench -endpoint URL -mode mb -bucket B      create B (an existing B is fine)
//	s3bench -endpoint URL -mode rb -bucket B      empty and delete B
//	s3bench -endpoint URL -mode copy -in FILE|s3://B/K -out s3://B/K|-
//
// copy reads its input as one stream (a file, or one GetObject, as
// enc-pipe's S3 source reads) and writes it to standard output ("-") or as
// a streaming multipart upload: -part-size parts (default 8 MiB, as
// enc-pipe), -concurrency of them in flight (default 4) while the next one
// fills, CRC32 checksums; an input shorter than one part is one PutObject.
// On error the upload is aborted. Credentials come from the default AWS
// chain; the client is path-style with -region (default us-east-1).
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go/logging"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	err := run(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "s3bench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context) error {
	mode := flag.String("mode", "", "mb, rb or copy")
	endpoint := flag.String("endpoint", "", "S3 endpoint URL")
	region := flag.String("region", "us-east-1", "region")
	bucket := flag.String("bucket", "", "mb, rb: bucket")
	in := flag.String("in", "", "copy: a file or s3://BUCKET/KEY")
	out := flag.String("out", "-", "copy: s3://BUCKET/KEY, or - for standard output")
	partSize := flag.Int64("part-size", 8<<20, "copy: multipart part size")
	conc := flag.Int("concurrency", 4, "copy: parts uploaded at once")
	flag.Parse()
	cfg, err := config.LoadDefaultConfig(ctx, config.WithLogger(logging.Nop{}))
	if err != nil {
		return err
	}
	c := s3.NewFromConfig(cfg, func(o *s3.Options) {
		o.Region = *region
		o.UsePathStyle = true
		o.Logger = logging.Nop{}
		if *endpoint != "" {
			o.BaseEndpoint = aws.String(*endpoint)
		}
	})
	switch *mode {
	case "mb":
		_, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: bucket})
		var owned *types.BucketAlreadyOwnedByYou
		if errors.As(err, &owned) {
			return nil
		}
		return err
	case "rb":
		return removeBucket(ctx, c, *bucket)
	case "copy":
		return copyObject(ctx, c, *in, *out, *partSize, *conc)
	}
	return fmt.Errorf("unknown -mode %q", *mode)
}

func parseURL(s string) (bucket, key string, ok bool) {
	rest, ok := strings.CutPrefix(s, "s3://")
	if !ok {
		return "", "", false
	}
	bucket, key, ok = strings.Cut(rest, "/")
	return bucket, key, ok && bucket != "" && key != ""
}

func copyObject(ctx context.Context, c *s3.Client, in, out string, partSize int64, conc int) error {
	var r io.Reader
	if b, k, ok := parseURL(in); ok {
		res, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: &b, Key: &k})
		if err != nil {
			return err
		}
		defer res.Body.Close()
		r = res.Body
	} else {
		f, err := os.Open(in)
		if err != nil {
			return err
		}
		defer f.Close()
		r = f
	}
	if out == "-" {
		_, err := io.CopyBuffer(os.Stdout, r, make([]byte, 1<<20))
		return err
	}
	b, k, ok := parseURL(out)
	if !ok {
		return fmt.Errorf("-out %q: want s3://BUCKET/KEY or -", out)
	}
	return upload(ctx, c, r, b, k, partSize, max(conc, 1))
}

// upload streams r to bucket/key: parts of partSize, conc in flight.
func upload(ctx context.Context, c *s3.Client, r io.Reader, bucket, key string, partSize int64, conc int) error {
	first := make([]byte, partSize)
	n, err := io.ReadFull(r, first)
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		_, err = c.PutObject(ctx, &s3.PutObjectInput{Bucket: &bucket, Key: &key, Body: bytes.NewReader(first[:n]),
			ContentLength: aws.Int64(int64(n)), ChecksumAlgorithm: types.ChecksumAlgorithmCrc32})
		return err
	}
	if err != nil {
		return err
	}
	mu, err := c.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: &bucket, Key: &key, ChecksumAlgorithm: types.ChecksumAlgorithmCrc32})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	free := make(chan []byte, conc+1)
	for range conc {
		free <- make([]byte, partSize)
	}
	var (
		wg      sync.WaitGroup
		partsMu sync.Mutex
		parts   []types.CompletedPart
	)
	send := func(num int32, buf []byte, n int) {
		defer wg.Done()
		defer func() { free <- buf }()
		res, err := c.UploadPart(ctx, &s3.UploadPartInput{Bucket: &bucket, Key: &key, UploadId: mu.UploadId, PartNumber: aws.Int32(num),
			Body: bytes.NewReader(buf[:n]), ContentLength: aws.Int64(int64(n)), ChecksumAlgorithm: types.ChecksumAlgorithmCrc32})
		if err != nil {
			cancel(fmt.Errorf("part %d: %w", num, err))
			return
		}
		partsMu.Lock()
		parts = append(parts, types.CompletedPart{PartNumber: aws.Int32(num), ETag: res.ETag, ChecksumCRC32: res.ChecksumCRC32})
		partsMu.Unlock()
	}
	buf, num := first, int32(1)
	var rerr error
	for {
		wg.Add(1)
		go send(num, buf, n)
		num++
		select {
		case buf = <-free:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		n, rerr = io.ReadFull(r, buf)
		if rerr == io.EOF {
			rerr = nil
			break
		}
		if rerr == io.ErrUnexpectedEOF {
			rerr = nil
			wg.Add(1)
			go send(num, buf, n)
			break
		}
		if rerr != nil {
			break
		}
	}
	wg.Wait()
	err = rerr
	if err == nil {
		err = context.Cause(ctx)
	}
	if err == nil {
		sortParts(parts)
		_, err = c.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{Bucket: &bucket, Key: &key, UploadId: mu.UploadId,
			MultipartUpload: &types.CompletedMultipartUpload{Parts: parts}})
	}
	if err != nil {
		actx := context.WithoutCancel(ctx)
		c.AbortMultipartUpload(actx, &s3.AbortMultipartUploadInput{Bucket: &bucket, Key: &key, UploadId: mu.UploadId})
	}
	return err
}

func sortParts(p []types.CompletedPart) {
	for i := 1; i < len(p); i++ {
		for j := i; j > 0 && *p[j].PartNumber < *p[j-1].PartNumber; j-- {
			p[j], p[j-1] = p[j-1], p[j]
		}
	}
}

// removeBucket deletes every object and incomplete upload of bucket, then
// the bucket.
func removeBucket(ctx context.Context, c *s3.Client, bucket string) error {
	ups, err := c.ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: &bucket})
	if err == nil {
		for _, u := range ups.Uploads {
			c.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{Bucket: &bucket, Key: u.Key, UploadId: u.UploadId})
		}
	}
	p := s3.NewListObjectsV2Paginator(c, &s3.ListObjectsV2Input{Bucket: &bucket})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return err
		}
		for _, o := range page.Contents {
			if _, err := c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &bucket, Key: o.Key}); err != nil {
				return err
			}
		}
	}
	_, err = c.DeleteBucket(ctx, &s3.DeleteBucketInput{Bucket: &bucket})
	return err
}
