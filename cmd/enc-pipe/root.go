package main

import (
	"strconv"

	"github.com/spf13/cobra"

	"github.com/enc-pipe/enc-pipe/cmd/enc-pipe/internal/config"
	"github.com/enc-pipe/enc-pipe/envelope"
	"github.com/enc-pipe/enc-pipe/securebuf"
)

// Defaults of the key hierarchy settings.
const (
	defaultService   = "enc-pipe"
	defaultProduct   = "default"
	defaultPartition = "default"
)

// globalFlags are the settings every command that touches keys shares.
type globalFlags struct {
	home         string
	service      string
	product      string
	partition    string
	regionSuffix string
	metastore    string
	kms          string
	secureMemory string
	keyAccess    string
	// allowCoreDumps keeps core dumps (--allow-core-dumps,
	// ENC_PIPE_ALLOW_CORE_DUMPS); by default they are turned off.
	allowCoreDumps bool
}

const rootLong = `enc-pipe encrypts and decrypts files, pipes and ETL records with envelope
encryption. Keys form an Asherah-compatible hierarchy: a master key (in a KMS,
or a local key file) wraps a system key per service and product, which wraps
an intermediate key per partition, which wraps a fresh data key per stream or
record. Wrapped keys live in a metastore (SQLite by default).

Data goes to standard output and messages to standard error. IN and OUT
default to "-" (standard input and output). Output files appear only when
the command succeeds (on Linux they have no name until then); plaintext
files are created 0600, and a replaced file keeps its mode.

On first use enc-pipe creates its embedded default in ENC_PIPE_HOME (default
$XDG_DATA_HOME/enc-pipe, else ~/.local/share/enc-pipe): master.key (32 random
bytes, mode 0600) and metastore.db (SQLite). Back up master.key: without it
nothing encrypted with it can be decrypted.

Settings come from flags, else from environment variables:
  --home           ENC_PIPE_HOME
  --service        ENC_PIPE_SERVICE        (default "enc-pipe")
  --product        ENC_PIPE_PRODUCT        (default "default")
  --partition      ENC_PIPE_PARTITION      (default "default")
  --region-suffix  ENC_PIPE_REGION_SUFFIX
  --metastore      ENC_PIPE_METASTORE      sqlite://PATH | postgres://... | mysql://... | dynamodb://TABLE?region=R
  --kms            ENC_PIPE_KMS            static:FILE | aws:REGION=ARN[,REGION=ARN...][,preferred=REGION]
  --secure-memory  ENC_PIPE_SECURE_MEMORY  auto | pkey | mprotect   (default "auto")
  --allow-core-dumps
                   ENC_PIPE_ALLOW_CORE_DUMPS=1  keep core dumps (by default they are off)
  --log-level      ENC_PIPE_LOG_LEVEL      debug | info | warn | error  (structured logs; default none)
  --log-format     ENC_PIPE_LOG_FORMAT     text | json
  --metrics-addr   ENC_PIPE_METRICS_ADDR   HOST:PORT: Prometheus /metrics and /healthz while running
  --stats          ENC_PIPE_STATS          text | json: a summary on standard error at the end

` + exitCodesHelp

const rootExample = `  # encrypt and decrypt a file
  enc-pipe encrypt -i report.csv -o report.csv.ep
  enc-pipe decrypt -i report.csv.ep -o report.csv

  # in a pipe
  pg_dump mydb | enc-pipe encrypt --partition backups > mydb.sql.ep
  enc-pipe decrypt < mydb.sql.ep | psql mydb

  # JSON Lines records, one Asherah DataRowRecord per line
  enc-pipe records encrypt --partition-field tenant_id < events.jsonl > events.drr.jsonl

  # what is in a file, without decrypting it
  enc-pipe inspect report.csv.ep`

func (a *app) newRootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:               "enc-pipe",
		Short:             "Envelope encryption for files, pipes and records",
		Long:              rootLong,
		Example:           rootExample,
		SilenceErrors:     true,
		SilenceUsage:      true,
		CompletionOptions: cobra.CompletionOptions{HiddenDefaultCmd: false},
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return trimFlagError(err) })

	pf := root.PersistentFlags()
	pf.StringVar(&a.g.home, "home", a.getenv(config.EnvHome), "directory of the embedded default (master.key, metastore.db)")
	pf.StringVar(&a.g.service, "service", a.envOr(config.EnvService, defaultService), "service name of the key hierarchy")
	pf.StringVar(&a.g.product, "product", a.envOr(config.EnvProduct, defaultProduct), "product name of the key hierarchy")
	pf.StringVarP(&a.g.partition, "partition", "p", a.envOr(config.EnvPartition, defaultPartition), "partition id: whose intermediate key protects the data")
	pf.StringVar(&a.g.regionSuffix, "region-suffix", a.getenv(config.EnvRegionSuffix), "region suffix of system and intermediate key ids (Asherah global tables)")
	// Not defaulted from ENC_PIPE_METASTORE here: --help would print the
	// default, and with it any password in the URL (see prepare).
	pf.StringVar(&a.g.metastore, "metastore", "", "metastore: sqlite://PATH, postgres://..., mysql://..., dynamodb://TABLE?region=R (default $ENC_PIPE_METASTORE, else sqlite in --home)")
	pf.StringVar(&a.g.kms, "kms", a.getenv(config.EnvKMS), "master key: static:FILE or aws:REGION=ARN[,...][,preferred=REGION] (default static master.key in --home)")
	pf.StringVar(&a.g.keyAccess, "key-access", a.envOr(config.EnvKeyAccess, envelope.KeyAccessCached.String()),
		"how cached intermediate keys are used: cached (one AES schedule per cached key on the heap, fast) or strict (the key is opened from locked memory for every record, and no schedule outlives a call)")
	pf.StringVar(&a.g.secureMemory, "secure-memory", a.envOr(config.EnvSecureMemory, config.DefaultSecureMemory),
		"how keys in locked memory are opened for use: auto, pkey (x86 memory protection keys: one thread at a time, no system call) or mprotect (page protection)")
	pf.BoolVar(&a.g.allowCoreDumps, "allow-core-dumps", false, "keep core dumps for debugging (by default they are turned off: a dump could hold key schedules)")
	a.registerS3Flags(pf)  // s3client.go
	a.registerObsFlags(pf) // observe.go

	root.AddCommand(
		a.newEncryptCommand(),
		a.newDecryptCommand(),
		a.newRecordsCommand(),
		a.newKafkaCommand(),
		a.newInspectCommand(),
		a.newKeysCommand(),
		a.newInitCommand(),
		a.newVersionCommand(),
		a.newGuardCommand(), // s3guard.go
	)
	a.markStartedInRunE(root)
	return root
}

// markStartedInRunE wraps every command's RunE so that errors returned
// before it runs (cobra's own argument and flag checks) count as usage
// errors, and so that prepare runs before any command.
func (a *app) markStartedInRunE(c *cobra.Command) {
	if run := c.RunE; run != nil {
		c.RunE = func(cmd *cobra.Command, args []string) error {
			a.markStarted()
			if err := a.prepare(cmd); err != nil {
				return err
			}
			return run(cmd, args)
		}
	}
	for _, sub := range c.Commands() {
		a.markStartedInRunE(sub)
	}
}

// prepare runs after the flags are parsed and before the command: it
// completes the settings from the environment, checks every global flag
// given (so that a mistake is a usage error even in a command that does not
// use the setting, and before anything is written), and turns core dumps
// off unless they are allowed.
func (a *app) prepare(cmd *cobra.Command) error {
	fl := cmd.Flags()
	if !fl.Changed("metastore") {
		a.g.metastore = a.getenv(config.EnvMetastore)
	}
	if !fl.Changed("allow-core-dumps") {
		if v := a.getenv(config.EnvAllowCoreDumps); v != "" {
			b, err := strconv.ParseBool(v)
			if err != nil {
				return usageErrorf("%s=%q: want 1 or 0 (true or false)", config.EnvAllowCoreDumps, v)
			}
			a.g.allowCoreDumps = b
		}
	}
	if a.g.service == "" || a.g.product == "" {
		return usageErrorf("--service and --product must not be empty")
	}
	if _, err := a.keyAccess(); err != nil {
		return err
	}
	mode, err := a.secureMemory()
	if err != nil {
		return err
	}
	if mode == securebuf.AccessPKey {
		if err := securebuf.PKeyAvailable(); err != nil {
			return usageErrorf("--secure-memory pkey: %v (use auto or mprotect)", err)
		}
	}
	if fl.Changed("metastore") && a.g.metastore != "" {
		if _, err := config.ParseMetastore(a.g.metastore); err != nil {
			return err
		}
	}
	if fl.Changed("kms") && a.g.kms != "" {
		if _, err := config.ParseKMS(a.g.kms); err != nil {
			return err
		}
	}
	if err := a.limitCoreDumps(); err != nil {
		return err
	}
	return a.setupObservability(cmd)
}

func (a *app) envOr(name, def string) string {
	if v := a.getenv(name); v != "" {
		return v
	}
	return def
}

// partitionExplicit reports whether the user chose a partition with the
// flag or ENC_PIPE_PARTITION (rather than taking the default).
func (a *app) partitionExplicit(cmd *cobra.Command) bool {
	return cmd.Flags().Changed("partition") || a.getenv(config.EnvPartition) != ""
}
