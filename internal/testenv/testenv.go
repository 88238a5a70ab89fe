// Package testenv tells tests where the real servers and tools they need are.
//
// A test that needs an outside server (PostgreSQL, MariaDB, dynalite,
// local-kms, versitygw, kfake) or tool (gcore, hyperfine) asks for it here.
// When it is missing the test is skipped on a developer's machine, but when
// the environment variable CI is "true" the test fails instead, so a broken
// service start can never turn into a green run that tested nothing.
//
// The servers are started by .ci/services.sh, which prints the variables
// to export (make test does this for you).
//
// No test calls t.Skip itself (TestEverySkipGoesThroughTestenv checks the
// whole repository): a CPU feature, which differs between CI machines, is
// branched on with CPUHas, and a test that a run leaves out on purpose
// (-short, the race detector) says so with NotApplicable.
package testenv

import (
	"os"
	"os/exec"
	"testing"
)

// Variables that .ci/services.sh exports for the servers it starts.
const (
	PostgresDSN = "ENCPIPE_TEST_PG_DSN"    // postgres://user:pass@127.0.0.1:15432/db?sslmode=disable
	MySQLDSN    = "ENCPIPE_TEST_MYSQL_DSN" // user:pass@tcp(127.0.0.1:13306)/db?parseTime=true
	DynamoDB    = "ENCPIPE_TEST_DYNAMODB"  // http://127.0.0.1:18000
	KMS         = "ENCPIPE_TEST_KMS"       // us-west-2=http://127.0.0.1:18080,us-east-1=http://127.0.0.1:18081
	S3          = "ENCPIPE_TEST_S3"        // http://127.0.0.1:17070
	Kafka       = "ENCPIPE_TEST_KAFKA"     // 127.0.0.1:19092
	StateDir    = "ENCPIPE_TEST_STATE"     // the services' state directory (pid files, logs)
)

// InCI reports whether the tests run under CI (CI=true), where nothing that
// a test needs may be missing.
func InCI() bool { return os.Getenv("CI") == "true" }

// Var returns the value of the environment variable name. When it is unset
// the test is skipped, or fails under CI.
func Var(t testing.TB, name string) string {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		Missing(t, "environment variable "+name+" is not set (start the servers with .ci/services.sh start, or run make test)")
	}
	return v
}

// Tool returns the path of the executable name. When it is not installed
// the test is skipped, or fails under CI.
func Tool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		Missing(t, name+" is not installed")
	}
	return p
}

// Missing skips the test with reason, or fails it when InCI.
func Missing(t testing.TB, reason string) {
	t.Helper()
	if InCI() {
		t.Fatalf("required by this test under CI=true: %s", reason)
	}
	t.Skip(reason)
}
