package config_test

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/enc-pipe/enc-pipe/cmd/enc-pipe/internal/config"
)

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestHome(t *testing.T) {
	for _, c := range []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"ENC_PIPE_HOME": "/x/y/", "XDG_DATA_HOME": "/xdg", "HOME": "/h"}, "/x/y"},
		{map[string]string{"XDG_DATA_HOME": "/xdg", "HOME": "/h"}, "/xdg/enc-pipe"},
		{map[string]string{"XDG_DATA_HOME": "relative", "HOME": "/h"}, "/h/.local/share/enc-pipe"},
		{map[string]string{"HOME": "/h"}, "/h/.local/share/enc-pipe"},
	} {
		got, err := config.Home(env(c.env))
		if err != nil || got != c.want {
			t.Errorf("Home(%v) = %q, %v; want %q", c.env, got, err, c.want)
		}
	}
	if _, err := config.Home(env(nil)); !errors.Is(err, config.ErrInvalid) {
		t.Errorf("Home with no variables: %v", err)
	}
}

func TestParseMetastore(t *testing.T) {
	for _, c := range []struct {
		in   string
		want config.Metastore
	}{
		{"sqlite:///var/lib/x.db", config.Metastore{Scheme: config.SQLite, Path: "/var/lib/x.db"}},
		{"sqlite://rel.db", config.Metastore{Scheme: config.SQLite, Path: "rel.db"}},
		{"postgres://u:p@127.0.0.1:5432/db?sslmode=disable", config.Metastore{Scheme: config.Postgres, DSN: "postgres://u:p@127.0.0.1:5432/db?sslmode=disable"}},
		{"mysql://u:p@tcp(127.0.0.1:3306)/db?parseTime=true", config.Metastore{Scheme: config.MySQL, DSN: "u:p@tcp(127.0.0.1:3306)/db?parseTime=true"}},
		{"dynamodb://EncryptionKey?region=us-west-2&endpoint=http://127.0.0.1:8000", config.Metastore{Scheme: config.DynamoDB, Table: "EncryptionKey", Region: "us-west-2", Endpoint: "http://127.0.0.1:8000"}},
		{"dynamodb://T?region=us-west-2&replicas=us-east-1,eu-west-1&region_suffix=true", config.Metastore{Scheme: config.DynamoDB, Table: "T", Region: "us-west-2", Replicas: []string{"us-east-1", "eu-west-1"}, RegionSuffix: true}},
	} {
		got, err := config.ParseMetastore(c.in)
		c.want.Raw = c.in
		if err != nil || !reflect.DeepEqual(got, c.want) {
			t.Errorf("ParseMetastore(%q) = %+v, %v", c.in, got, err)
		}
	}
	for _, in := range []string{"", "metastore.db", "sqlite://", "redis://x", "dynamodb://T", "postgres:///db", "mysql://nodb",
		"dynamodb://T?region=r&region_suffix=yes", "dynamodb://T?region=r&tabel=x"} {
		if _, err := config.ParseMetastore(in); !errors.Is(err, config.ErrInvalid) {
			t.Errorf("ParseMetastore(%q) = %v, want ErrInvalid", in, err)
		}
	}
}

func TestRedacted(t *testing.T) {
	for _, in := range []string{"postgres://user:secretpw@h:5432/db", "mysql://user:secretpw@tcp(h:3306)/db",
		"postgres://user@h:5432/db?password=secretpw&sslpassword=secretpw", "mysql://user@tcp(h:3306)/db?token=secretpw"} {
		m, err := config.ParseMetastore(in)
		if err != nil {
			t.Fatal(err)
		}
		if r := m.Redacted(); strings.Contains(r, "secretpw") || !strings.Contains(r, "user") {
			t.Errorf("Redacted(%q) = %q", in, r)
		}
	}
	if _, err := config.ParseMetastore("postgres://user:secretpw@/db"); err == nil || strings.Contains(err.Error(), "secretpw") {
		t.Errorf("error leaks the password or accepts a URL without host: %v", err)
	}
	if _, err := config.ParseMetastore("dynamodb://t?region=us-west-2&secret_key=secretpw"); err == nil || strings.Contains(err.Error(), "secretpw") {
		t.Errorf("error leaks the secret parameter or accepts an unknown one: %v", err)
	}
}

func TestParseKMS(t *testing.T) {
	k, err := config.ParseKMS("static:/etc/key")
	if err != nil || k.Kind != config.Static || k.File != "/etc/key" {
		t.Errorf("static: %+v %v", k, err)
	}
	k, err = config.ParseKMS("aws:us-west-2=arn:aws:kms:us-west-2:1:key/a,preferred=us-west-2")
	if err != nil || k.Kind != config.AWS || k.AWS != "us-west-2=arn:aws:kms:us-west-2:1:key/a,preferred=us-west-2" {
		t.Errorf("aws: %+v %v", k, err)
	}
	for _, in := range []string{"", "static:", "aws:", "aws:nothing", "vault:x", "/etc/key"} {
		if _, err := config.ParseKMS(in); !errors.Is(err, config.ErrInvalid) {
			t.Errorf("ParseKMS(%q) = %v", in, err)
		}
	}
}

func TestParseEndpoints(t *testing.T) {
	got, err := config.ParseEndpoints("us-west-2=http://127.0.0.1:1, us-east-1=http://127.0.0.1:2")
	if err != nil || len(got) != 2 || got["us-east-1"] != "http://127.0.0.1:2" {
		t.Errorf("ParseEndpoints = %v, %v", got, err)
	}
	for _, in := range []string{"us-west-2", "=http://x", "r="} {
		if _, err := config.ParseEndpoints(in); !errors.Is(err, config.ErrInvalid) {
			t.Errorf("ParseEndpoints(%q) = %v", in, err)
		}
	}
}

func TestDefaults(t *testing.T) {
	if m := config.DefaultMetastore("/h"); m.Scheme != config.SQLite || m.Path != "/h/metastore.db" {
		t.Errorf("DefaultMetastore = %+v", m)
	}
	if k := config.DefaultKMS("/h"); k.Kind != config.Static || k.File != "/h/master.key" {
		t.Errorf("DefaultKMS = %+v", k)
	}
}
