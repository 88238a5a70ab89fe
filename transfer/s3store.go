package transfer

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/enc-pipe/enc-pipe/internal/s3retry"
	"github.com/enc-pipe/enc-pipe/sinks"
	"github.com/enc-pipe/enc-pipe/sinks/s3sink"
	"github.com/enc-pipe/enc-pipe/sources"
	"github.com/enc-pipe/enc-pipe/sources/s3source"
)

// S3API is the part of *s3.Client that S3Store uses.
type S3API interface {
	s3source.API
	s3sink.API
	ListObjectsV2(ctx context.Context, in *s3.ListObjectsV2Input, optFns ...func(*s3.Options)) (*s3.ListObjectsV2Output, error)
}

var _ S3API = (*s3.Client)(nil)

// S3Store is the objects under a prefix of a bucket. Keys that end in "/"
// (folder markers) are not listed. Objects are written with s3sink, which
// never leaves a partial object, with two metadata entries more
// (MetaSourceSize and MetaSourceVersion) that Done compares.
type S3Store struct {
	Client S3API
	Bucket string
	// Prefix is prepended to every name; it is empty or ends in "/".
	Prefix string
	// SourceOptions are passed to s3source.Open.
	SourceOptions []s3source.Option
	// SinkOptions, if set, returns the s3sink options for the object
	// written from src (part size, metadata, ...). S3Store adds its own
	// metadata to any given with s3sink.WithMetadata: pass that option
	// through Metadata instead.
	SinkOptions func(src Entry) []s3sink.Option
	// Metadata, if set, returns the user metadata of the object written
	// from src.
	Metadata func(src Entry) map[string]string
	// Track, if set, is given every sink that Create returns, with the
	// object's name.
	Track func(name string, s sinks.Sink)
}

var _ Store = (*S3Store)(nil)

func (s *S3Store) String() string { return "s3://" + s.Bucket + "/" + s.Prefix }

// Location returns s3://bucket/prefix+name.
func (s *S3Store) Location(name string) string { return "s3://" + s.Bucket + "/" + s.Prefix + name }

// List lists the prefix with ListObjectsV2.
func (s *S3Store) List(ctx context.Context, fn func(Entry) error) error {
	p := s3.NewListObjectsV2Paginator(s.Client, &s3.ListObjectsV2Input{Bucket: &s.Bucket, Prefix: &s.Prefix})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return err
		}
		for _, o := range page.Contents {
			key := aws.ToString(o.Key)
			if strings.HasSuffix(key, "/") || !strings.HasPrefix(key, s.Prefix) {
				continue
			}
			e := Entry{Name: key[len(s.Prefix):], Size: aws.ToInt64(o.Size), ModTime: aws.ToTime(o.LastModified),
				Version: "etag:" + aws.ToString(o.ETag)}
			if err := fn(e); err != nil {
				return err
			}
		}
	}
	return nil
}

// Open opens an object with s3source.
func (s *S3Store) Open(ctx context.Context, name string) (sources.Source, error) {
	return s3source.Open(ctx, s.Client, s.Bucket, s.Prefix+name, s.SourceOptions...)
}

// Create starts an upload with s3sink.
func (s *S3Store) Create(ctx context.Context, name string, src Entry) (sinks.Sink, error) {
	meta := map[string]string{}
	if s.Metadata != nil {
		for k, v := range s.Metadata(src) {
			meta[k] = v
		}
	}
	meta[MetaSourceSize] = strconv.FormatInt(src.Size, 10)
	meta[MetaSourceVersion] = src.Version
	var opts []s3sink.Option
	if s.SinkOptions != nil {
		opts = s.SinkOptions(src)
	}
	opts = append(opts, s3sink.WithMetadata(meta))
	w, err := s3sink.New(ctx, s.Client, s.Bucket, s.Prefix+name, opts...)
	if err != nil {
		return nil, err
	}
	if s.Track != nil {
		s.Track(name, w)
	}
	return w, nil
}

// Done reports whether the object exists and its metadata names src's
// size and version.
func (s *S3Store) Done(ctx context.Context, name string, src Entry) (bool, error) {
	key := s.Prefix + name
	out, err := s.Client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &s.Bucket, Key: &key})
	if err != nil {
		var nf *types.NotFound
		var nsk *types.NoSuchKey
		if errors.As(err, &nf) || errors.As(err, &nsk) || s3retry.StatusCode(err) == http.StatusNotFound {
			return false, nil
		}
		return false, err
	}
	meta := map[string]string{}
	for k, v := range out.Metadata {
		meta[strings.ToLower(k)] = v
	}
	return meta[MetaSourceSize] == strconv.FormatInt(src.Size, 10) && meta[MetaSourceVersion] == src.Version, nil
}
