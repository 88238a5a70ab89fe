package location_test

import (
	"errors"
	"testing"

	"github.com/enc-pipe/enc-pipe/cmd/enc-pipe/internal/location"
)

func TestParse(t *testing.T) {
	for _, c := range []struct {
		in   string
		kind location.Kind
		path string
		host string
	}{
		{"-", location.Stdio, "", ""},
		{"a.txt", location.File, "a.txt", ""},
		{"/tmp/x.ep", location.File, "/tmp/x.ep", ""},
		{"./dir/odd://name", location.File, "./dir/odd://name", ""},
		{`C:\data\x`, location.File, `C:\data\x`, ""},
		{"file:///tmp/y", location.File, "/tmp/y", ""},
		{"kafka://b1:9092,b2:9092/topic", location.Kafka, "", "b1:9092,b2:9092"},
	} {
		l, err := location.Parse(c.in)
		if err != nil {
			t.Errorf("Parse(%q): %v", c.in, err)
			continue
		}
		if l.Kind != c.kind || l.Path != c.path || l.String() != c.in {
			t.Errorf("Parse(%q) = %+v", c.in, l)
		}
		if c.host != "" && l.URL.Host != c.host {
			t.Errorf("Parse(%q) host = %q", c.in, l.URL.Host)
		}
	}
}

func TestParseErrors(t *testing.T) {
	for _, in := range []string{"", "s3://", "s3:///key", "s3://bad bucket/k", "s3://b\x00/k", "kafka://host", "ftp://x/y", "file://remote/path", "file://"} {
		if _, err := location.Parse(in); !errors.Is(err, location.ErrInvalid) {
			t.Errorf("Parse(%q) = %v, want ErrInvalid", in, err)
		}
	}
}

// TestParseS3TakesKeysLiterally checks that S3 names are split at the first
// "/" after the bucket and that the key keeps every byte: S3 keys may
// contain "?", "#", "%" and repeated slashes, which URL parsing would eat.
func TestParseS3TakesKeysLiterally(t *testing.T) {
	for _, c := range []struct{ bucket, key string }{
		{"bucket", "key/with/slashes"},
		{"bucket", "a?b=c#frag"},
		{"bucket", "a%20b%zz"},
		{"bucket", "dir//double/"},
		{"bucket", "sp ace/\u00e9t\u00e9"},
		{"my.bucket-1", ""},
		{"bucket", "2026/"},
	} {
		for _, in := range []string{"s3://" + c.bucket + "/" + c.key, "S3://" + c.bucket + "/" + c.key} {
			l, err := location.Parse(in)
			if err != nil {
				t.Errorf("Parse(%q): %v", in, err)
				continue
			}
			if l.Kind != location.S3 || l.Bucket != c.bucket || l.Key != c.key || l.String() != in {
				t.Errorf("Parse(%q) = %+v, want bucket %q key %q", in, l, c.bucket, c.key)
			}
			wantPrefix := c.key == "" || c.key[len(c.key)-1] == '/'
			if l.IsPrefix() != wantPrefix {
				t.Errorf("Parse(%q).IsPrefix() = %v", in, l.IsPrefix())
			}
		}
	}
	l, err := location.Parse("s3://bucket")
	if err != nil || l.Bucket != "bucket" || l.Key != "" || !l.IsPrefix() {
		t.Errorf("Parse(s3://bucket) = %+v, %v: want the whole bucket as a prefix", l, err)
	}
}
