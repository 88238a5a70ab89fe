// Command kms serves nsmithuk/local-kms on a loopback address, one process
// per AWS region, for enc-pipe's integration tests.
//
// The upstream binary binds every interface and keeps its region, account
// and data path in process-global variables; this wrapper binds only the
// given address and takes those settings as flags. It stops on SIGTERM or
// SIGINT.
//
//	kms -addr 127.0.0.1:18080 -region us-west-2 -data /tmp/encpipe-ci/kms-a
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/nsmithuk/local-kms/src"
	"github.com/nsmithuk/local-kms/src/config"
	"github.com/nsmithuk/local-kms/src/data"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:18080", "address to listen on (host:port)")
	region := flag.String("region", "us-west-2", "AWS region this instance pretends to be")
	account := flag.String("account", "111122223333", "AWS account id used in key ARNs")
	dataDir := flag.String("data", "", "data directory (required; one per instance)")
	flag.Parse()
	if err := run(*addr, *region, *account, *dataDir); err != nil {
		fmt.Fprintln(os.Stderr, "kms:", err)
		os.Exit(1)
	}
}

func run(addr, region, account, dataDir string) error {
	if dataDir == "" {
		return errors.New("-data is required (each instance needs its own directory)")
	}
	abs, err := filepath.Abs(dataDir)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(abs, 0o700); err != nil {
		return err
	}
	config.AWSRegion, config.AWSAccountId, config.DatabasePath = region, account, abs

	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	db := data.NewDatabase(config.DatabasePath)
	defer db.Close()

	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			src.HandleRequest(w, r, db)
		}),
		ReadHeaderTimeout: 10 * time.Second,
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	fmt.Printf("listening %s region=%s data=%s\n", ln.Addr(), region, abs)

	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return srv.Shutdown(shutdownCtx)
}
