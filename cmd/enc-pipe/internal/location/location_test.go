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
		{"s3://bucket/key/with/slashes", location.S3, "", "bucket"},
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
	for _, in := range []string{"", "s3://bucket", "s3:///key", "kafka://host", "ftp://x/y", "file://remote/path", "file://"} {
		if _, err := location.Parse(in); !errors.Is(err, location.ErrInvalid) {
			t.Errorf("Parse(%q) = %v, want ErrInvalid", in, err)
		}
	}
}
