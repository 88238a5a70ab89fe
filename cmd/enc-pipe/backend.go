package main

import (
	"context"
	"errors"
	"fmt"
	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/smithy-go/logging"
	"io/fs"
	"os"
	"slices"

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
	return s, nil
}

// openBackend opens the metastore and KMS and builds the session factory.
// With create, the embedded default is created on first use (and one line
// on stderr says so); without it a missing default is an error, since a new
// key cannot decrypt anything.
func (a *app) openBackend(ctx context.Context, create bool) (*backend, error) {
	s, err := a.resolveSettings()
	if err != nil {
		return nil, err
	}
	if create && s.usesHome {
		if _, err := a.ensureHome(ctx, s); err != nil {
			return nil, err
		}
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
	secrets, err := newSecretFactory(s.access)
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
	factory, err := envelope.NewSessionFactory(cfg, store, kms, envelope.NewAES256GCM(), envelope.WithSecretFactory(secrets))
	if err != nil {
		return nil, keyError(err, "cannot set up the key hierarchy")
	}
	be.factory = factory
	be.closers = append(be.closers, factory.Close)
	ok = true
	return be, nil
}

// homeHasKeys reports whether any file of the embedded default that s uses
// exists.
func (a *app) homeHasKeys(s *settings) bool {
	exists := func(p string) bool { _, err := os.Stat(p); return err == nil }
	return (a.g.kms == "" && exists(s.kms.File)) || (a.g.metastore == "" && exists(s.metastore.Path))
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

// ensureHome creates the embedded default's directory, master key and
// metastore if missing, says so in one line, and reports whether it created
// anything.
func (a *app) ensureHome(ctx context.Context, s *settings) (bool, error) {
	if err := os.MkdirAll(s.home, 0o700); err != nil {
		return false, ioError(err, "cannot create %s", s.home)
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
		if _, err := os.Stat(s.metastore.Path); errors.Is(err, fs.ErrNotExist) {
			_, closeStore, err := openMetastore(ctx, s.metastore, true, true)
			if err != nil {
				return false, err
			}
			closeStore()
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
			return nil, nil, keyError(err, "cannot open metastore")
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

// openSQLiteStore opens (creating if needed) a SQLite metastore file with
// Asherah's table.
func openSQLiteStore(ctx context.Context, path string) (*sqlstore.Store, func() error, error) {
	db, store, err := sqlitedb.Open(ctx, path)
	if err != nil {
		return nil, nil, err
	}
	return store, db.Close, nil
}
