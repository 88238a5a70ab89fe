// Package location parses the names of inputs and outputs given on the
// enc-pipe command line. It is the one place that decides what a name means:
// "-" is standard input or output, "s3://bucket/key" an S3 object (or,
// with a key that is empty or ends in "/", a prefix),
// "kafka://broker[,broker]/topic" a Kafka topic, "file:///path" or anything
// else without a scheme a local file.
//
// S3 names are taken literally, as the AWS CLI takes them: the bucket is
// what comes before the first "/" after "s3://", and the key is everything
// after it, byte for byte. No percent-decoding is done and "?" and "#" are
// part of the key, since S3 keys may contain them.
package location

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// Kind is the kind of a location.
type Kind int

// The kinds of location.
const (
	Stdio Kind = iota // "-": standard input or output
	File              // a local path
	S3                // s3://bucket/key
	Kafka             // kafka://broker[,broker...]/topic
)

// String names the kind for messages.
func (k Kind) String() string {
	switch k {
	case Stdio:
		return "stdio"
	case File:
		return "file"
	case S3:
		return "s3"
	case Kafka:
		return "kafka"
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// Location is a parsed input or output name.
type Location struct {
	Kind Kind
	// Path is the file path for File locations.
	Path string
	// Bucket and Key name an S3 object for S3 locations. Key is empty
	// for "s3://bucket" and "s3://bucket/", and ends in "/" for a prefix
	// such as "s3://bucket/2026/".
	Bucket, Key string
	// URL is the parsed URL for Kafka locations.
	URL *url.URL
	// Raw is the name as given.
	Raw string
}

// ErrInvalid is returned (wrapped) for names that cannot be parsed.
var ErrInvalid = errors.New("invalid location")

// Parse parses a location. The empty string is refused; callers map a
// missing name to "-" themselves.
func Parse(s string) (Location, error) {
	switch {
	case s == "":
		return Location{}, fmt.Errorf("%w: empty name", ErrInvalid)
	case s == "-":
		return Location{Kind: Stdio, Raw: s}, nil
	}
	scheme, _, ok := strings.Cut(s, "://")
	if !ok || strings.ContainsAny(scheme, `/\.`) || scheme == "" {
		// A plain path, including relative paths such as "a/b://c" and
		// Windows paths such as `C:\x` (no "://").
		return Location{Kind: File, Path: s, Raw: s}, nil
	}
	if strings.EqualFold(scheme, "s3") {
		return parseS3(s)
	}
	u, err := url.Parse(s)
	if err != nil {
		return Location{}, fmt.Errorf("%w: %q: %v", ErrInvalid, s, err)
	}
	switch strings.ToLower(scheme) {
	case "file":
		if u.Host != "" && u.Host != "localhost" {
			return Location{}, fmt.Errorf("%w: %q: file URLs must name a local path (file:///path)", ErrInvalid, s)
		}
		if u.Path == "" {
			return Location{}, fmt.Errorf("%w: %q: no path", ErrInvalid, s)
		}
		return Location{Kind: File, Path: u.Path, Raw: s}, nil
	case "kafka":
		if u.Host == "" || strings.Trim(u.Path, "/") == "" {
			return Location{}, fmt.Errorf("%w: %q: want kafka://BROKER[,BROKER...]/TOPIC", ErrInvalid, s)
		}
		return Location{Kind: Kafka, URL: u, Raw: s}, nil
	}
	return Location{}, fmt.Errorf("%w: %q: unknown scheme %q (want a path, -, file://, s3:// or kafka://)", ErrInvalid, s, scheme)
}

// parseS3 splits s3://BUCKET[/KEY] without URL decoding.
func parseS3(s string) (Location, error) {
	rest := s[len("s3://"):]
	bucket, key, _ := strings.Cut(rest, "/")
	if bucket == "" {
		return Location{}, fmt.Errorf("%w: %q: want s3://BUCKET/KEY", ErrInvalid, s)
	}
	if len(bucket) > 255 || strings.IndexFunc(bucket, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '-' || r == '_')
	}) >= 0 {
		return Location{}, fmt.Errorf("%w: %q: bucket name %q has characters S3 does not allow", ErrInvalid, s, bucket)
	}
	if len(key) > 1024 {
		return Location{}, fmt.Errorf("%w: %q: S3 keys are at most 1024 bytes", ErrInvalid, s)
	}
	return Location{Kind: S3, Bucket: bucket, Key: key, Raw: s}, nil
}

// IsPrefix reports whether an S3 location names a prefix rather than an
// object: its key is empty or ends in "/".
func (l Location) IsPrefix() bool {
	return l.Kind == S3 && (l.Key == "" || strings.HasSuffix(l.Key, "/"))
}

// String returns the name as given.
func (l Location) String() string { return l.Raw }
