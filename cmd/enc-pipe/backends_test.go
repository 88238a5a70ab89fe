package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"

	"github.com/enc-pipe/enc-pipe/cmd/enc-pipe/internal/config"
	"github.com/enc-pipe/enc-pipe/internal/testenv"
)

// The SQL server metastores through the command line: init creates
// Asherah's table, then files and records round-trip and keys list shows
// the keys (a service name of its own keeps the shared database's other
// rows out of the way).
func TestSQLServerMetastores(t *testing.T) {
	for _, c := range []struct{ name, env, prefix string }{
		{"postgres", testenv.PostgresDSN, ""},
		{"mysql", testenv.MySQLDSN, "mysql://"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dsn := c.prefix + testenv.Var(t, c.env)
			dir := t.TempDir()
			service := fmt.Sprintf("cli%d", time.Now().UnixNano())
			flags := []string{"--metastore", dsn, "--service", service}
			run := func(stdin []byte, args ...string) ([]byte, string, error) {
				cmd := command(t, filepath.Join(dir, "home"), append(append([]string{}, args...), flags...)...)
				cmd.Stdin = bytes.NewReader(stdin)
				var stderr bytes.Buffer
				cmd.Stderr = &stderr
				out, err := cmd.Output()
				return out, stderr.String(), err
			}
			if _, stderr, err := run(nil, "init"); err != nil || !strings.Contains(stderr, "is ready") {
				t.Fatalf("init: %v: %s", err, stderr)
			}
			plain := pseudoRandom(100000)
			ct, stderr, err := run(plain, "encrypt", "--partition", "p1")
			if err != nil {
				t.Fatalf("encrypt: %v: %s", err, stderr)
			}
			if got, stderr, err := run(ct, "decrypt"); err != nil || !bytes.Equal(got, plain) {
				t.Fatalf("decrypt: %v: %s", err, stderr)
			}
			recs, stderr, err := run([]byte("{\"a\":1}\n"), "records", "encrypt", "--partition", "p2")
			if err != nil {
				t.Fatalf("records encrypt: %v: %s", err, stderr)
			}
			if back, stderr, err := run(recs, "records", "decrypt"); err != nil || string(back) != "{\"a\":1}\n" {
				t.Fatalf("records decrypt: %q %v: %s", back, err, stderr)
			}
			list, stderr, err := run(nil, "keys", "list")
			if err != nil || !strings.Contains(string(list), "_SK_"+service+"_default") ||
				!strings.Contains(string(list), "_IK_p1_"+service+"_default") || !strings.Contains(string(list), "_IK_p2_"+service+"_default") {
				t.Fatalf("keys list: %v: %s%s", err, list, stderr)
			}
			if _, err := os.Stat(filepath.Join(dir, "home", "metastore.db")); err == nil {
				t.Error("a SQLite metastore was created in the home directory")
			}
		})
	}
}

// createKMSKey makes a master key in one local-kms region and returns its ARN.
func createKMSKey(t *testing.T, region, endpoint string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	client := kms.NewFromConfig(aws.Config{
		Credentials: credentials.NewStaticCredentialsProvider("encpipe", "encpipe-secret", ""),
	}, func(o *kms.Options) {
		o.Region = region
		o.BaseEndpoint = aws.String(endpoint)
	})
	out, err := client.CreateKey(ctx, &kms.CreateKeyInput{
		KeySpec:  types.KeySpecSymmetricDefault,
		KeyUsage: types.KeyUsageTypeEncryptDecrypt,
	})
	if err != nil {
		t.Fatalf("CreateKey in %s: %v", region, err)
	}
	return *out.KeyMetadata.Arn
}

// The production backends through the command line: a DynamoDB metastore
// (dynalite) and AWS KMS in two regions (two local-kms servers). init
// creates the table; files and records round-trip; when the preferred KMS
// region is unreachable, decryption fails over to the other one.
func TestDynamoDBAndAWSKMS(t *testing.T) {
	dynamo := testenv.Var(t, testenv.DynamoDB)
	eps, err := config.ParseEndpoints(testenv.Var(t, testenv.KMS))
	if err != nil || eps["us-west-2"] == "" || eps["us-east-1"] == "" {
		t.Fatalf("%s: %v %v", testenv.KMS, eps, err)
	}
	west, east := createKMSKey(t, "us-west-2", eps["us-west-2"]), createKMSKey(t, "us-east-1", eps["us-east-1"])
	table := fmt.Sprintf("cli_test_%d", time.Now().UnixNano())
	dir := t.TempDir()
	flags := []string{
		"--metastore", "dynamodb://" + table + "?region=us-west-2&endpoint=" + dynamo,
		"--kms", "aws:us-west-2=" + west + ",us-east-1=" + east + ",preferred=us-west-2",
	}
	endpoints := "us-west-2=" + eps["us-west-2"] + ",us-east-1=" + eps["us-east-1"]
	run := func(endpoints string, stdin []byte, args ...string) ([]byte, string, error) {
		cmd := exec.Command(binPath, append(append([]string{}, args...), flags...)...)
		cmd.Env = append(cleanEnv(),
			"ENC_PIPE_HOME="+filepath.Join(dir, "unused-home"),
			"ENC_PIPE_KMS_ENDPOINTS="+endpoints,
			"AWS_ACCESS_KEY_ID=encpipe", "AWS_SECRET_ACCESS_KEY=encpipe-secret", "AWS_REGION=us-west-2",
			"AWS_EC2_METADATA_DISABLED=true")
		cmd.Stdin = bytes.NewReader(stdin)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		return out, stderr.String(), err
	}

	if _, stderr, err := run(endpoints, nil, "init"); err != nil || !strings.Contains(stderr, "is ready") {
		t.Fatalf("init: %v: %s", err, stderr)
	}
	plain := pseudoRandom(300000)
	ct, stderr, err := run(endpoints, plain, "encrypt", "--partition", "tenant-1", "--chunk-size", "4KiB")
	if err != nil {
		t.Fatalf("encrypt: %v: %s", err, stderr)
	}
	got, stderr, err := run(endpoints, ct, "decrypt", "--partition", "tenant-1")
	if err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("decrypt: %v: %s", err, stderr)
	}
	recs, stderr, err := run(endpoints, []byte("{\"t\":\"a\",\"v\":1}\n{\"t\":\"b\",\"v\":2}\n"), "records", "encrypt", "--partition-field", "t")
	if err != nil {
		t.Fatalf("records encrypt: %v: %s", err, stderr)
	}
	back, stderr, err := run(endpoints, recs, "records", "decrypt")
	if err != nil || string(back) != "{\"t\":\"a\",\"v\":1}\n{\"t\":\"b\",\"v\":2}\n" {
		t.Fatalf("records decrypt: %q %v: %s", back, err, stderr)
	}
	list, stderr, err := run(endpoints, nil, "keys", "list")
	if err != nil || !strings.Contains(string(list), "_SK_enc-pipe_default") || !strings.Contains(string(list), "_IK_tenant-1_enc-pipe_default") {
		t.Fatalf("keys list: %v: %s%s", err, list, stderr)
	}

	// The preferred region's KMS is unreachable: the system key is unwrapped
	// in us-east-1 (a fresh process has no cached keys).
	dead := "us-west-2=http://127.0.0.1:1,us-east-1=" + eps["us-east-1"]
	got, stderr, err = run(dead, ct, "decrypt")
	if err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("decrypt with us-west-2 down: %v: %s", err, stderr)
	}
	// Both unreachable: a key/backend error naming both regions, no output.
	got, stderr, err = run("us-west-2=http://127.0.0.1:1,us-east-1=http://127.0.0.1:1", ct, "decrypt")
	if code := exitCodeOf(t, err); code != 4 || len(got) != 0 || !strings.Contains(stderr, "us-west-2") || !strings.Contains(stderr, "us-east-1") || strings.Count(stderr, "\n") != 1 {
		t.Fatalf("decrypt with both regions down: exit %d, %d bytes, stderr %q", code, len(got), stderr)
	}
}
