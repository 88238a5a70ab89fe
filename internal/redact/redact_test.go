package redact_test

import (
	"fmt"
	"net/url"
	"strings"
	"testing"

	"github.com/enc-pipe/enc-pipe/internal/redact"
)

// dsnCases are specifications holding secrets (each "S3cr3t…" string) and
// parts that must stay readable in messages.
var dsnCases = []struct {
	in      string
	secrets []string
	keep    []string
}{
	{"postgres://alice:S3cr3tA@db.example:5432/keys?sslmode=require", []string{"S3cr3tA"}, []string{"alice", "db.example", "sslmode=require"}},
	{"postgres://alice@db.example/keys?password=S3cr3tB&sslpassword=S3cr3tC&sslmode=verify-full", []string{"S3cr3tB", "S3cr3tC"}, []string{"alice", "db.example", "sslmode=verify-full"}},
	{"postgresql://alice:p%40ss%2FS3cr3tD@db.example/keys", []string{"p@ss/S3cr3tD", "p%40ss%2FS3cr3tD", "S3cr3tD"}, []string{"alice", "db.example"}},
	{"mysql://bob:S3cr3tE@tcp(db.example:3306)/keys?parseTime=true", []string{"S3cr3tE"}, []string{"bob", "db.example:3306", "parseTime=true"}},
	{"mysql://bob:S3:cr@3tF@tcp(db.example:3306)/keys", []string{"S3:cr@3tF"}, []string{"bob", "db.example:3306"}},
	{"bob:S3cr3tG@tcp(db.example:3306)/keys", []string{"S3cr3tG"}, []string{"bob", "db.example"}},
	{"dynamodb://T?region=us-west-2&aws_secret_access_key=S3cr3tH&X-Amz-Security-Token=S3cr3tI", []string{"S3cr3tH", "S3cr3tI"}, []string{"region=us-west-2", "dynamodb://T"}},
	{"postgres://alice:S3cr3tJ@[bad host/keys?sslpassword=S3cr3tK", []string{"S3cr3tJ", "S3cr3tK"}, []string{"alice"}},
	{"host=db.example user=alice password=S3cr3tL sslmode=disable", []string{"S3cr3tL"}, []string{"host=db.example", "user=alice"}},
}

func hides(t *testing.T, what, got string, secrets, keep []string) {
	t.Helper()
	for _, s := range secrets {
		if strings.Contains(got, s) {
			t.Errorf("%s: %q shows the secret %q", what, got, s)
		}
	}
	for _, k := range keep {
		if !strings.Contains(got, k) {
			t.Errorf("%s: %q lost %q", what, got, k)
		}
	}
}

func TestRedactDSNHidesEverySecret(t *testing.T) {
	for _, c := range dsnCases {
		hides(t, "DSN", redact.DSN(c.in), c.secrets, c.keep)
	}
}

// Driver messages may quote a DSN whole, re-encoded, or only in part; every
// secret that DSNSecrets found is scrubbed from them.
func TestScrubHidesSecretsQuotedByDrivers(t *testing.T) {
	for _, c := range dsnCases {
		found := redact.Secrets(c.in)
		quoted := []string{
			fmt.Sprintf("cannot parse `%s`: failed to connect", c.in),
			"dial error (" + c.in + ")",
			"server rejected password " + c.secrets[0],
		}
		if u, err := url.Parse(c.in); err == nil {
			quoted = append(quoted, "bad DSN "+u.Redacted()) // net/url hides only the userinfo password
		}
		for _, q := range quoted {
			hides(t, "Scrub", redact.Scrub(q, found), c.secrets, nil)
		}
		flag := redact.Secrets("--metastore=" + c.in)
		if len(flag) != len(found) {
			t.Errorf("Secrets(--metastore=%s) = %q, want %q", c.in, flag, found)
		}
	}
	// Values that cannot be secrets are not scrubbed from messages.
	if s := redact.Secrets("mysql://u@tcp(h)/db?allowCleartextPasswords=true&serverPubKey=1"); len(s) != 0 {
		t.Errorf("DSNSecrets kept trivial values: %q", s)
	}
}
