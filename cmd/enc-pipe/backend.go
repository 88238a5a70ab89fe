package main

import (
	"context"
	"errors"
	"fmt"
	"github.com/enc-pipe/enc-pipe/internal/redact"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/smithy-go/logging"

	"github.com/enc-pipe/enc-pipe/cmd/enc-pipe/internal/config"
	"github.com/enc-pipe/enc-pipe/envelope"
	"github.com/enc-pipe/enc-pipe/envelope/kms/awskms"
	"github.com/enc-pipe/enc-pipe/envelope/kms/statickms"
	"github.com/enc-pipe/enc-pipe/envelope/metastore/dynamostore"
	"github.com/enc-pipe/enc-pipe/envelope/metastore/sqlstore"
	"github.com/enc-pipe/enc-pipe/envelope/metastore/sqlstore/serverdb"
	"github.com/enc-pipe/enc-pipe/envelope/metastore/sqlstore/sqlitedb"
	"github.com/enc-pipe/enc-pipe/securebuf"
)

// backend is the opened key hierarchy: metastore, KMS and session factory.
// Close wipes the keys it holds and closes the metastore.
type backend struct {
	factory *envelope.SessionFactory
	closers []func() error
}

// Close closes the factory (wiping cached keys), the KMS (wiping the master
// key) and the metastore, in that order.
func (b *backend) Close() error {
	var errs []error
	for i := len(b.closers) - 1; i >= 0; i-- {
		errs = append(errs, b.closers[i]())
	}
	b.closers = nil
	return errors.Join(errs...)
}

// settings are the resolved --metastore and --kms.
type settings struct {
	home      string
	metastore config.Metastore
	kms       config.KMS
	// usesHome is set when the metastore or the KMS is the embedded default.
	usesHome bool
	// aws is the parsed AWS KMS specification, and kmsEndpoints the
	// per-region endpoint overrides (ENC_PIPE_KMS_ENDPOINTS).
	aws          awskms.Spec
	kmsEndpoints map[string]string
	// access is --secure-memory: how the keys' protected memory is
	// opened for use.
	access securebuf.AccessMode
	// keyAccess is --key-access: how cached intermediate keys are used.
	keyAccess envelope.KeyAccess
}

// resolveSettings parses --metastore and --kms (or picks the embedded
// defaults) and checks that the backends they name are built in. It opens
// nothing.
func (a *app) resolveSettings() (*settings, error) {
	s := &settings{}
	var err error
	if a.g.service == "" || a.g.product == "" {
		return nil, usageErrorf("--service and --product must not be empty")
	}
	needHome := a.g.metastore == "" || a.g.kms == ""
	if needHome {
		if s.home, err = a.homeDir(); err != nil {
			return nil, err
		}
		s.usesHome = true
	}
	if a.g.metastore == "" {
		s.metastore = config.DefaultMetastore(s.home)
	} else if s.metastore, err = config.ParseMetastore(a.g.metastore); err != nil {
		return nil, err
	}
	if a.g.kms == "" {
		s.kms = config.DefaultKMS(s.home)
	} else if s.kms, err = config.ParseKMS(a.g.kms); err != nil {
		return nil, err
	}
	if s.kms.Kind == config.AWS {
		if s.aws, err = awskms.ParseSpec(s.kms.AWS); err != nil {
			return nil, usageErrorf("--kms: %v", err)
		}
	}
	if s.kmsEndpoints, err = config.ParseEndpoints(a.getenv(config.EnvKMSEndpoints)); err != nil {
		return nil, err
	}
	if s.access, err = a.secureMemory(); err != nil {
		return nil, err
	}
	if s.keyAccess, err = a.keyAccess(); err != nil {
		return nil, err
	}
	return s, nil
}

// openBackend resolves the settings and opens the backend (see
// openBackendWith).
func (a *app) openBackend(ctx context.Context, create bool) (*backend, error) {
	s, err := a.resolveSettings()
	if err != nil {
		return nil, err
	}
	return a.openBackendWith(ctx, s, create)
}

// openBackendWith opens the metastore and KMS of s and builds the session
// factory. With create, the embedded default is created on first use (and
// one line on stderr says so); without it a missing default is an error,
// since a new key cannot decrypt anything.
func (a *app) openBackendWith(ctx context.Context, s *settings, create bool) (*backend, error) {
	if s.usesHome {
		if err := a.checkHome(s.home); err != nil {
			return nil, err
		}
	}
	if create && s.usesHome {
		if _, err := a.ensureHome(ctx, s); err != nil {
			return nil, err
		}
	}
	if !create && s.usesHome && !a.homeComplete(s) {
		// The writer of our input may be creating the home right now:
		// once input has arrived, it is done.
		a.awaitInput()
	}
	if !create && s.usesHome && !a.homeHasKeys(s) {
		return nil, keyError(fmt.Errorf("%s and %s are missing", config.MasterKeyFile, config.MetastoreFile),
			"no keys in %s: nothing was encrypted with this ENC_PIPE_HOME (set ENC_PIPE_HOME, or --metastore and --kms)", s.home)
	}
	be := &backend{}
	ok := false
	defer func() {
		if !ok {
			be.Close()
		}
	}()

	// One factory holds every key of the run; it is closed last, after
	// the session factory and the KMS have closed their secrets.
	started := time.Now()
	secrets, err := newSecretFactory(s.access, a.secretObservability()...)
	if err != nil {
		return nil, err
	}
	be.closers = append(be.closers, secrets.Close)

	store, closeStore, err := openMetastore(ctx, s.metastore, create, false)
	if err != nil {
		return nil, err
	}
	be.closers = append(be.closers, closeStore)

	kms, err := a.openKMS(ctx, s, secrets)
	if err != nil {
		return nil, err
	}
	if c, ok := kms.(interface{ Close() error }); ok {
		be.closers = append(be.closers, c.Close)
	}

	cfg := &envelope.Config{
		Service:      a.g.service,
		Product:      a.g.product,
		RegionSuffix: a.g.regionSuffix,
		Policy:       envelope.NewCryptoPolicy(),
	}
	factory, err := envelope.NewSessionFactory(cfg, store, kms, envelope.NewAES256GCM(), envelope.WithSecretFactory(secrets),
		envelope.WithKeyAccess(s.keyAccess), envelope.WithMetrics(a.obs.provider), envelope.WithLogger(a.obs.log))
	if err != nil {
		return nil, keyError(err, "cannot set up the key hierarchy")
	}
	be.factory = factory
	be.closers = append(be.closers, factory.Close)
	a.obs.health.set(factory.Check)
	a.obs.log.Debug("key hierarchy open", "metastore", s.metastore.Redacted(), "kms", string(s.kms.Kind),
		"service", a.g.service, "product", a.g.product, "secure_memory", secrets.AccessMode().String(),
		"key_access", s.keyAccess.String(), "elapsed_seconds", time.Since(started).Seconds())
	ok = true
	return be, nil
}

// awaitInput waits until the input of the run has bytes to read (or
// ends), and reports whether it has. A command that finds no keys when it
// starts may be the second half of a pipe whose first half is creating
// them ("enc-pipe records encrypt | enc-pipe records decrypt" on a new
// home): the first half creates the home before it writes anything, so
// once input has arrived, the keys are there if they will ever be.
func (a *app) awaitInput() bool {
	a.mu.Lock()
	in := a.in
	a.mu.Unlock()
	return in != nil && in.await != nil && in.await()
}

// homeHasKeys reports whether any file of the embedded default that s uses
// exists.
func (a *app) homeHasKeys(s *settings) bool {
	return (a.g.kms == "" && exists(s.kms.File)) || (a.g.metastore == "" && exists(s.metastore.Path))
}

// homeComplete reports whether every file of the embedded default that s
// uses exists.
func (a *app) homeComplete(s *settings) bool {
	return (a.g.kms != "" || exists(s.kms.File)) && (a.g.metastore != "" || exists(s.metastore.Path))
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

// lazyBackend opens the backend when the first session is asked for. It
// implements encpipe.Sessions, so that decrypt opens the key hierarchy only
// once the stream header has arrived: a stream from a pipe whose writer is
// still creating the embedded default decrypts, and input that is not a
// stream is reported as such without any key. It is used by one goroutine.
type lazyBackend struct {
	open func() (*backend, error)
	once sync.Once
	be   *backend
	err  error // the error of open, returned as is (it carries its exit code)
}

func (l *lazyBackend) get() (*backend, error) {
	l.once.Do(func() { l.be, l.err = l.open() })
	return l.be, l.err
}

// GetSession opens the backend, if not yet done, and a session of it.
func (l *lazyBackend) GetSession(partition string) (*envelope.Session, error) {
	be, err := l.get()
	if err != nil {
		return nil, err
	}
	return be.factory.GetSession(partition)
}

// openErr is the error of opening the backend, if it was tried and failed.
func (l *lazyBackend) openErr() error { return l.err }

// Close closes the backend if it was opened.
func (l *lazyBackend) Close() error {
	if l.be == nil {
		return nil
	}
	return l.be.Close()
}

// openKMS opens the master key: a static key file read into protected
// memory made by secrets (read through a scratch slot), or AWS KMS in one or
// more regions, which keeps its data keys in secrets.
func (a *app) openKMS(ctx context.Context, s *settings, secrets *securebuf.Factory) (envelope.KMS, error) {
	switch s.kms.Kind {
	case config.Static:
		// The key file is read into a locked, no-dump scratch slot (wiped
		// when the callback returns), never into the Go heap.
		var kms *statickms.KMS
		err := secrets.WithScratch(config.MasterKeySize, func(key []byte) error {
			if err := a.readMasterKey(s.kms.File, key); err != nil {
				return err
			}
			var err error
			if kms, err = statickms.New(key, statickms.WithSecretFactory(secrets)); err != nil {
				return keyError(err, "master key %s", s.kms.File)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		return kms, nil
	case config.AWS:
		awsCfg, err := loadAWSConfig(ctx)
		if err != nil {
			return nil, err
		}
		opts := []awskms.Option{awskms.WithAWSConfig(awsCfg), awskms.WithSecretFactory(secrets)}
		for region, url := range s.kmsEndpoints {
			opts = append(opts, awskms.WithEndpoint(region, url))
		}
		kms, err := awskms.New(ctx, s.aws, opts...)
		if err != nil {
			return nil, keyError(err, "cannot set up AWS KMS")
		}
		return kms, nil
	}
	return nil, usageErrorf("--kms %s: unknown KMS", s.kms.Raw)
}

// loadAWSConfig loads the default AWS configuration and credential chain,
// with the SDK's own logging off: messages are ours, one line each.
func loadAWSConfig(ctx context.Context) (aws.Config, error) {
	cfg, err := awsconfig.LoadDefaultConfig(ctx, awsconfig.WithLogger(logging.Nop{}))
	if err != nil {
		return aws.Config{}, keyError(err, "cannot load the AWS configuration")
	}
	return cfg, nil
}

// ensureHome creates the embedded default's directory (0700), master key
// and metastore if missing, says so in one line, and reports whether it
// created anything. Each file is made complete under a temporary name and
// linked into place, so processes racing on a new home end with one master
// key and one metastore that all of them use, and no process ever sees a
// half-written file.
func (a *app) ensureHome(ctx context.Context, s *settings) (bool, error) {
	if err := os.MkdirAll(s.home, 0o700); err != nil {
		return false, ioError(err, "cannot create %s", s.home)
	}
	if err := a.checkHome(s.home); err != nil {
		return false, err
	}
	var created []string
	if s.kms.Kind == config.Static && a.g.kms == "" {
		made, err := createMasterKey(s.kms.File)
		if err != nil {
			return false, keyError(err, "cannot create master key %s", s.kms.File)
		}
		if made {
			created = append(created, config.MasterKeyFile)
		}
	}
	if s.metastore.Scheme == config.SQLite && a.g.metastore == "" {
		made, err := createMetastore(ctx, s.metastore.Path)
		if err != nil {
			return false, keyError(err, "cannot create metastore %s", s.metastore.Path)
		}
		if made {
			created = append(created, config.MetastoreFile)
		}
	}
	if len(created) > 0 {
		if slices.Contains(created, config.MasterKeyFile) {
			a.noticef("created %s in %s; back up master.key: if it is lost, everything encrypted with it is lost", joinAnd(created), s.home)
		} else {
			a.noticef("created %s in %s", joinAnd(created), s.home)
		}
	}
	return len(created) > 0, nil
}

func joinAnd(items []string) string {
	switch len(items) {
	case 0:
		return ""
	case 1:
		return items[0]
	}
	return fmt.Sprintf("%s and %s", joinComma(items[:len(items)-1]), items[len(items)-1])
}

func joinComma(items []string) string {
	out := items[0]
	for _, it := range items[1:] {
		out += ", " + it
	}
	return out
}

// openMetastore opens the metastore m. With create, a missing SQLite file
// is created with Asherah's table; without it, a missing file is an error.
// With initSchema (enc-pipe init), a server metastore's table is created
// when missing; otherwise it must exist, as in Asherah.
func openMetastore(ctx context.Context, m config.Metastore, create, initSchema bool) (envelope.Metastore, func() error, error) {
	switch m.Scheme {
	case config.SQLite:
		if !create {
			if _, err := os.Stat(m.Path); err != nil {
				return nil, nil, keyError(err, "cannot open metastore")
			}
		} else if err := createPrivate(m.Path); err != nil {
			return nil, nil, keyError(err, "cannot create metastore")
		}
		store, closeDB, err := openSQLiteStore(ctx, m.Path)
		if err != nil {
			return nil, nil, keyError(err, "cannot open metastore %s", m.Redacted())
		}
		return store, closeDB, nil
	case config.Postgres, config.MySQL:
		dialect := sqlstore.Postgres
		if m.Scheme == config.MySQL {
			dialect = sqlstore.MySQL
		}
		db, store, err := serverdb.Open(ctx, dialect, m.DSN, serverdb.Options{CreateSchema: initSchema})
		if err != nil {
			// Drivers may quote the DSN in their errors: scrub them here
			// too, not only when the message is printed.
			return nil, nil, keyError(&redactedError{redact.Scrub(err.Error(), redact.Secrets(m.Raw)), err}, "cannot open metastore")
		}
		return store, db.Close, nil
	case config.DynamoDB:
		cfg := dynamostore.Config{Table: m.Table, Region: m.Region, Endpoint: m.Endpoint, RegionSuffix: m.RegionSuffix}
		for _, r := range m.Replicas {
			cfg.Replicas = append(cfg.Replicas, dynamostore.Replica{Region: r})
		}
		awsCfg, err := loadAWSConfig(ctx)
		if err != nil {
			return nil, nil, err
		}
		cfg.AWSConfig = &awsCfg
		if initSchema {
			client := dynamostore.NewClient(awsCfg, m.Region, m.Endpoint)
			if err := dynamostore.CreateTable(ctx, client, m.Table); err != nil {
				return nil, nil, keyError(err, "cannot create the metastore table")
			}
		}
		store, err := dynamostore.Open(ctx, cfg)
		if err != nil {
			return nil, nil, keyError(err, "cannot open metastore %s", m.Redacted())
		}
		return store, func() error { return nil }, nil
	}
	return nil, nil, usageErrorf("--metastore %s: the %s metastore is not built yet", m.Redacted(), m.Scheme)
}

// redactedError is an error whose message has been scrubbed of secrets;
// it still unwraps to its cause for errors.Is.
type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }

// openSQLiteStore opens (creating if needed) a SQLite metastore file with
// Asherah's table.
func openSQLiteStore(ctx context.Context, path string) (*sqlstore.Store, func() error, error) {
	db, store, err := sqlitedb.Open(ctx, path)
	if err != nil {
		return nil, nil, err
	}
	return store, db.Close, nil
}
