package testenv

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Private is a set of servers of the test's own, started by
// .ci/services.sh in a state directory and on ports of their own. Fault
// tests use it to stop and restart a server without disturbing the other
// tests, which run at the same time against the shared servers.
//
// The servers are stopped and their state removed when the test ends.
type Private struct {
	script string
	state  string
	ports  map[string]int
}

// Service names understood by .ci/services.sh.
const (
	ServicePostgres = "pg"
	ServiceMySQL    = "mysql"
	ServiceDynamoDB = "dynamo"
	ServiceKMSA     = "kms-a" // us-west-2
	ServiceKMSB     = "kms-b" // us-east-1
)

// portVars maps a service to the variable that sets its port.
var portVars = map[string]string{
	"pg":     "ENCPIPE_CI_PG_PORT",
	"mysql":  "ENCPIPE_CI_MYSQL_PORT",
	"dynamo": "ENCPIPE_CI_DYNAMO_PORT",
	"kms-a":  "ENCPIPE_CI_KMS_A_PORT",
	"kms-b":  "ENCPIPE_CI_KMS_B_PORT",
	"s3":     "ENCPIPE_CI_S3_PORT",
	"kafka":  "ENCPIPE_CI_KAFKA_PORT",
}

// StartPrivate starts private instances of the named services (see the
// Service constants) and waits until they are ready. It needs what
// .ci/services.sh install provides and, like Var, skips the test when the
// shared servers were not started (ENCPIPE_TEST_STATE unset), or fails it
// under CI.
func StartPrivate(t testing.TB, names ...string) *Private {
	t.Helper()
	Var(t, StateDir)
	script := servicesScript(t)
	state, err := os.MkdirTemp("", "encpipe-private-")
	if err != nil {
		t.Fatal(err)
	}
	// PostgreSQL and MariaDB run as their own users and must reach it.
	if err := os.Chmod(state, 0o755); err != nil {
		t.Fatal(err)
	}
	p := &Private{script: script, state: state, ports: map[string]int{}}
	for name := range portVars {
		p.ports[name] = freePort(t)
	}
	t.Cleanup(func() {
		if out, err := p.run("stop"); err != nil {
			t.Errorf("stopping private servers: %v\n%s", err, out)
		}
		os.RemoveAll(state)
	})
	for _, name := range names {
		p.Start(t, name)
	}
	return p
}

// Start starts (or restarts) the named service and waits until it is
// ready. Its data survives a Stop.
func (p *Private) Start(t testing.TB, name string) {
	t.Helper()
	if out, err := p.run("start-one", name); err != nil {
		t.Fatalf("services.sh start-one %s: %v\n%s", name, err, out)
	}
}

// Stop stops the named service and returns once it has exited.
func (p *Private) Stop(t testing.TB, name string) {
	t.Helper()
	if out, err := p.run("stop-one", name); err != nil {
		t.Fatalf("services.sh stop-one %s: %v\n%s", name, err, out)
	}
}

// Port returns the port of the named service.
func (p *Private) Port(name string) int { return p.ports[name] }

// PostgresDSN returns the DSN of the private PostgreSQL.
func (p *Private) PostgresDSN() string {
	return fmt.Sprintf("postgres://encpipe:encpipe@127.0.0.1:%d/encpipe?sslmode=disable", p.ports["pg"])
}

// MySQLDSN returns the DSN of the private MariaDB.
func (p *Private) MySQLDSN() string {
	return fmt.Sprintf("encpipe:encpipe@tcp(127.0.0.1:%d)/encpipe?parseTime=true", p.ports["mysql"])
}

// URL returns http://127.0.0.1:PORT for the named HTTP service (dynamo,
// kms-a, kms-b, s3).
func (p *Private) URL(name string) string {
	return fmt.Sprintf("http://127.0.0.1:%d", p.ports[name])
}

func (p *Private) run(args ...string) ([]byte, error) {
	cmd := exec.Command("bash", append([]string{p.script}, args...)...)
	cmd.Env = append(os.Environ(), "ENCPIPE_CI_STATE="+p.state)
	for name, v := range portVars {
		cmd.Env = append(cmd.Env, fmt.Sprintf("%s=%d", v, p.ports[name]))
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.WaitDelay = time.Minute
	err := cmd.Run()
	return out.Bytes(), err
}

// ServicesScript returns the path of .ci/services.sh, found by walking up
// from the working directory.
func servicesScript(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		p := filepath.Join(dir, ".ci", "services.sh")
		if _, err := os.Stat(p); err == nil {
			return p
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			Missing(t, ".ci/services.sh not found above the working directory")
			return ""
		}
		dir = parent
	}
}

// ServiceControl stops or starts one of the shared servers (the ones named
// by ENCPIPE_TEST_STATE), through .ci/services.sh stop-one / start-one.
// Prefer StartPrivate: stopping a shared server disturbs every test that
// runs meanwhile.
func ServiceControl(t testing.TB, action, name string) {
	t.Helper()
	state := Var(t, StateDir)
	if action != "start-one" && action != "stop-one" {
		t.Fatalf("ServiceControl: action %q is not start-one or stop-one", action)
	}
	cmd := exec.Command("bash", servicesScript(t), action, name)
	cmd.Env = append(os.Environ(), "ENCPIPE_CI_STATE="+state)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("services.sh %s %s: %v\n%s", action, name, err, strings.TrimSpace(string(out)))
	}
}

func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}
