package main

import (
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/enc-pipe/enc-pipe/internal/testenv"
)

// secretRE matches the secrets planted in the specifications below.
var secretRE = regexp.MustCompile(`Secret[A-Z][0-9]`)

// Secrets in a metastore specification never reach stdout or stderr: URL
// and MySQL DSN passwords, ?password=, ?sslpassword=, AWS-style secret
// parameters; given by flag or ENC_PIPE_METASTORE; in our messages, in
// driver errors that quote the DSN, in --help's flag defaults.
func TestSecretsNeverPrinted(t *testing.T) {
	specs := []string{
		"postgres://u:SecretA1@127.0.0.1:1/db?connect_timeout=2&sslpassword=SecretA2",
		"postgres://u@127.0.0.1:1/db?password=SecretB1&sslpassword=SecretB2&connect_timeout=2",
		"postgres://u:SecretC1@127.0.0.1:1/db?sslmode=bogus&password=SecretC2",
		"postgresql://u:SecretD1@127.0.0.1:1/db?target_session_attrs=bogus",
		"mysql://u:SecretE1@tcp(127.0.0.1:1)/db?timeout=2s",
		"mysql://u:SecretF1@tcp(127.0.0.1:1)/db?timeout=bogus",
		"dynamodb://T?region=us-west-2&aws_secret_access_key=SecretG1",
		"dynamodb://T?aws_secret_access_key=SecretH1",
		"postgres://u:SecretI1@[::1:bad/db?password=SecretI2",
		"u:SecretJ1@tcp(127.0.0.1:1)/db",
	}
	if dsn := os.Getenv(testenv.PostgresDSN); dsn != "" {
		// A real server that refuses a wrong password.
		if u, err := url.Parse(dsn); err == nil {
			u.User = url.UserPassword(u.User.Username(), "SecretK1")
			specs = append(specs, u.String())
			q := u.Query()
			u.User = url.User(u.User.Username())
			q.Set("password", "SecretK2")
			u.RawQuery = q.Encode()
			specs = append(specs, u.String())
		}
	}
	if dsn := os.Getenv(testenv.MySQLDSN); dsn != "" {
		if at := strings.LastIndex(dsn, "@"); at > 0 {
			user, _, _ := strings.Cut(dsn[:at], ":")
			specs = append(specs, "mysql://"+user+":SecretL1"+dsn[at:])
		}
	}
	dir := t.TempDir()
	small := filepath.Join(dir, "small")
	if err := os.WriteFile(small, []byte("small\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, spec := range specs {
		secrets := secretRE.FindAllString(spec, -1)
		runs := []struct {
			env  string
			args []string
		}{
			{"", []string{"encrypt", "--metastore", spec, "-i", small, "-o", filepath.Join(dir, "out")}},
			{"", []string{"init", "--metastore=" + spec}},
			{"", []string{"keys", "list", "--metastore", spec, "extra-arg"}},
			{"ENC_PIPE_METASTORE=" + spec, []string{"keys", "list"}},
			{"ENC_PIPE_METASTORE=" + spec, []string{"decrypt", "--help"}},
			{"ENC_PIPE_METASTORE=" + spec, []string{"records", "encrypt", "-i", small}},
		}
		for _, r := range runs {
			cmd := command(t, filepath.Join(dir, "home"), r.args...)
			if r.env != "" {
				cmd.Env = append(cmd.Env, r.env)
			}
			res := runCmd(t, cmd, nil)
			for _, s := range secrets {
				if strings.Contains(res.stdout+res.stderr, s) {
					t.Errorf("%s %v printed %s:\nstdout %q\nstderr %q", r.env, r.args, s, res.stdout, res.stderr)
				}
			}
			if res.code == 0 && !strings.Contains(strings.Join(r.args, " "), "--help") {
				t.Errorf("%s %v succeeded", r.env, r.args)
			}
		}
	}
}
