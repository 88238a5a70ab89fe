// Package config resolves the enc-pipe command's settings: where the
// embedded default lives (ENC_PIPE_HOME), and what the --metastore and --kms
// specifications mean. It parses and validates; it opens no database and
// reads no key, so every mistake is reported before any work starts.
package config

import (
	"errors"
	"fmt"
	"github.com/enc-pipe/enc-pipe/internal/redact"
	"net/url"
	"path/filepath"
	"strings"

	"github.com/enc-pipe/enc-pipe/securebuf"
)

// Names of the files in the home directory.
const (
	MasterKeyFile = "master.key"
	MetastoreFile = "metastore.db"
)

// MasterKeySize is the size of a static master key in bytes.
const MasterKeySize = 32

// Environment variables read by the command (flags take precedence).
const (
	EnvHome         = "ENC_PIPE_HOME"
	EnvService      = "ENC_PIPE_SERVICE"
	EnvProduct      = "ENC_PIPE_PRODUCT"
	EnvPartition    = "ENC_PIPE_PARTITION"
	EnvRegionSuffix = "ENC_PIPE_REGION_SUFFIX"
	EnvMetastore    = "ENC_PIPE_METASTORE"
	EnvKMS          = "ENC_PIPE_KMS"
	EnvSecureMemory = "ENC_PIPE_SECURE_MEMORY"
	// EnvKeyAccess is --key-access: cached or strict.
	EnvKeyAccess = "ENC_PIPE_KEY_ACCESS"
	// EnvAllowCoreDumps, when true (1), keeps core dumps, which the
	// command otherwise turns off.
	EnvAllowCoreDumps = "ENC_PIPE_ALLOW_CORE_DUMPS"
)

// ErrInvalid is returned (wrapped) for settings that cannot be used; the
// message names the setting and what is expected.
var ErrInvalid = errors.New("invalid setting")

// Home returns the directory of the embedded default: $ENC_PIPE_HOME, else
// $XDG_DATA_HOME/enc-pipe, else $HOME/.local/share/enc-pipe. getenv is
// os.Getenv in the command and a map lookup in tests.
func Home(getenv func(string) string) (string, error) {
	if h := getenv(EnvHome); h != "" {
		return filepath.Clean(h), nil
	}
	if x := getenv("XDG_DATA_HOME"); x != "" && filepath.IsAbs(x) {
		return filepath.Join(x, "enc-pipe"), nil
	}
	if h := getenv("HOME"); h != "" {
		return filepath.Join(h, ".local", "share", "enc-pipe"), nil
	}
	return "", fmt.Errorf("%w: cannot find a home directory: set %s", ErrInvalid, EnvHome)
}

// Metastore schemes.
const (
	SQLite   = "sqlite"
	Postgres = "postgres"
	MySQL    = "mysql"
	DynamoDB = "dynamodb"
)

// Metastore is a parsed --metastore specification.
type Metastore struct {
	// Scheme is one of SQLite, Postgres, MySQL, DynamoDB.
	Scheme string
	// Path is the database file for SQLite.
	Path string
	// DSN is the driver connection string for Postgres (the URL as given)
	// and MySQL (what follows "mysql://", in go-sql-driver form).
	DSN string
	// Table, Region and Endpoint are DynamoDB's table, preferred AWS
	// region and optional endpoint override; Replicas are the other regions
	// of a global table, in read fail-over order; RegionSuffix makes the
	// key ids carry the region (Asherah's WithRegionSuffix).
	Table, Region, Endpoint string
	Replicas                []string
	RegionSuffix            bool
	// Raw is the specification as given, for messages. It may hold a
	// password: print Redacted instead.
	Raw string
}

// Redacted is the specification with every password and every
// secret-looking query parameter replaced by "xxxxx" (see redact.DSN).
func (m Metastore) Redacted() string { return redact.DSN(m.Raw) }

// DefaultMetastore is the embedded default: SQLite in home.
func DefaultMetastore(home string) Metastore {
	p := filepath.Join(home, MetastoreFile)
	return Metastore{Scheme: SQLite, Path: p, Raw: "sqlite://" + p}
}

// ParseMetastore parses sqlite://PATH, postgres://…, postgresql://…,
// mysql://USER:PASS@tcp(HOST:PORT)/DB and
// dynamodb://TABLE?region=R[&endpoint=URL][&replicas=R2,R3][&region_suffix=true].
// For SQLite everything after "sqlite://" is the path: sqlite:///var/x.db is
// absolute, sqlite://x.db relative to the working directory.
func ParseMetastore(s string) (Metastore, error) {
	bad := func(format string, a ...any) (Metastore, error) {
		return Metastore{}, fmt.Errorf("%w: --metastore: "+format, append([]any{ErrInvalid}, a...)...)
	}
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok {
		return bad("%q: want sqlite://PATH, postgres://…, mysql://… or dynamodb://TABLE?region=REGION", redact.DSN(s))
	}
	m := Metastore{Raw: s}
	switch strings.ToLower(scheme) {
	case "sqlite", "sqlite3":
		path, _, _ := strings.Cut(rest, "?")
		if path == "" {
			return bad("sqlite://: no database path")
		}
		m.Scheme, m.Path = SQLite, path
	case "postgres", "postgresql":
		u, err := url.Parse(s)
		if err != nil || u.Host == "" {
			return bad("postgres URL %q: want postgres://USER:PASS@HOST:PORT/DB", redact.DSN(s))
		}
		m.Scheme, m.DSN = Postgres, s
	case "mysql":
		if !strings.Contains(rest, "/") {
			return bad("mysql://: want mysql://USER:PASS@tcp(HOST:PORT)/DB")
		}
		m.Scheme, m.DSN = MySQL, rest
	case "dynamodb":
		u, err := url.Parse(s)
		if err != nil || u.Host == "" {
			return bad("%q: want dynamodb://TABLE?region=REGION", redact.DSN(s))
		}
		q := u.Query()
		m.Scheme, m.Table = DynamoDB, u.Host
		m.Region, m.Endpoint = q.Get("region"), q.Get("endpoint")
		if m.Region == "" {
			return bad("%q: dynamodb needs ?region=REGION", redact.DSN(s))
		}
		if r := q.Get("replicas"); r != "" {
			m.Replicas = strings.Split(r, ",")
		}
		switch q.Get("region_suffix") {
		case "", "false":
		case "true":
			m.RegionSuffix = true
		default:
			return bad("%q: region_suffix must be true or false", redact.DSN(s))
		}
		for k := range q {
			switch k {
			case "region", "endpoint", "replicas", "region_suffix":
			default:
				return bad("%q: unknown dynamodb parameter %q (want region, endpoint, replicas, region_suffix)", redact.DSN(s), k)
			}
		}
	default:
		return bad("unknown scheme %q (want sqlite, postgres, mysql or dynamodb)", scheme)
	}
	return m, nil
}

// EnvKMSEndpoints overrides the AWS KMS endpoint per region, as
// REGION=URL[,REGION=URL...] (local test servers, VPC endpoints).
const EnvKMSEndpoints = "ENC_PIPE_KMS_ENDPOINTS"

// ParseEndpoints parses REGION=URL[,REGION=URL...].
func ParseEndpoints(s string) (map[string]string, error) {
	out := map[string]string{}
	if s == "" {
		return out, nil
	}
	for _, kv := range strings.Split(s, ",") {
		r, u, ok := strings.Cut(strings.TrimSpace(kv), "=")
		if !ok || r == "" || u == "" {
			return nil, fmt.Errorf("%w: %s: %q: want REGION=URL[,REGION=URL...]", ErrInvalid, EnvKMSEndpoints, redact.DSN(kv))
		}
		out[r] = u
	}
	return out, nil
}

// KMS kinds.
const (
	Static = "static"
	AWS    = "aws"
)

// KMS is a parsed --kms specification.
type KMS struct {
	// Kind is Static or AWS.
	Kind string
	// File is the static master key file.
	File string
	// AWS is what follows "aws:" (REGION=ARN,...,preferred=REGION), parsed
	// by the AWS KMS backend.
	AWS string
	// Raw is the specification as given.
	Raw string
}

// DefaultKMS is the embedded default: a static master key in home.
func DefaultKMS(home string) KMS {
	p := filepath.Join(home, MasterKeyFile)
	return KMS{Kind: Static, File: p, Raw: "static:" + p}
}

// ParseKMS parses static:FILE and aws:REGION=ARN[,REGION=ARN...][,preferred=REGION].
func ParseKMS(s string) (KMS, error) {
	kind, rest, ok := strings.Cut(s, ":")
	switch {
	case ok && kind == Static:
		if rest == "" {
			return KMS{}, fmt.Errorf("%w: --kms static: needs a key file (static:FILE)", ErrInvalid)
		}
		return KMS{Kind: Static, File: rest, Raw: s}, nil
	case ok && kind == AWS:
		if !strings.Contains(rest, "=") {
			return KMS{}, fmt.Errorf("%w: --kms aws: want aws:REGION=ARN[,REGION=ARN...][,preferred=REGION]", ErrInvalid)
		}
		return KMS{Kind: AWS, AWS: rest, Raw: s}, nil
	}
	return KMS{}, fmt.Errorf("%w: --kms %q: want static:FILE or aws:REGION=ARN[,...][,preferred=REGION]", ErrInvalid, redact.DSN(s))
}

// DefaultSecureMemory is the default of --secure-memory: memory protection
// keys where the CPU and kernel have them, mprotect otherwise.
const DefaultSecureMemory = "auto"

// ParseSecureMemory parses --secure-memory (ENC_PIPE_SECURE_MEMORY): how
// keys in protected memory are opened for use. "auto" (the default, also
// for ""), "pkey" (x86 memory protection keys; fails later, when the
// factory is made, where they are unavailable) or "mprotect" (page
// protection, the portable mode).
func ParseSecureMemory(s string) (securebuf.AccessMode, error) {
	if s == "" {
		s = DefaultSecureMemory
	}
	m, err := securebuf.ParseAccessMode(s)
	if err != nil {
		return 0, fmt.Errorf("%w: --secure-memory %q: want auto, pkey or mprotect", ErrInvalid, s)
	}
	return m, nil
}
