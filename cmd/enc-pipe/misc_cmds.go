package main

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"

	"github.com/enc-pipe/enc-pipe/stream"
)

func (a *app) newInitCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "init",
		Short: "Create the embedded default (master key and SQLite metastore)",
		Long: `Create ENC_PIPE_HOME (default $XDG_DATA_HOME/enc-pipe, else
~/.local/share/enc-pipe) with master.key (32 random bytes, mode 0600) and
metastore.db (SQLite). Existing files are never replaced. The first encrypt
does the same implicitly. With --metastore, init also creates Asherah's key
table there if it is missing (a SQLite file, or a DynamoDB table with hash
key Id and range key Created); other commands expect it to exist.

Back up master.key: it wraps every key in metastore.db, and without it
nothing encrypted with them can be decrypted.`,
		Example: `  enc-pipe init
  ENC_PIPE_HOME=/srv/keys enc-pipe init
  enc-pipe init --metastore 'dynamodb://EncryptionKey?region=us-west-2' --kms aws:us-west-2=arn:aws:kms:us-west-2:111122223333:key/abcd`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := a.resolveSettings()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			if s.usesHome {
				created, err := a.ensureHome(ctx, s)
				if err != nil {
					return err
				}
				if !created {
					a.noticef("%s already holds the embedded default; nothing was changed", s.home)
				}
			}
			if a.g.metastore != "" {
				_, closeStore, err := openMetastore(ctx, s.metastore, true, true)
				if err != nil {
					return err
				}
				closeStore()
				a.noticef("metastore %s is ready", s.metastore.Redacted())
			}
			return nil
		},
	}
}

func (a *app) newVersionCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version and how keys are protected in memory",
		Long: `Print the version, then how keys in protected memory are opened for use
with the current --secure-memory setting (ENC_PIPE_SECURE_MEMORY): pkey (x86
memory protection keys) or mprotect, and why auto fell back to mprotect; and
how cached intermediate keys are used (--key-access: cached or strict).`,
		Example: `  enc-pipe version
  ENC_PIPE_SECURE_MEMORY=mprotect enc-pipe version`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := a.requireStdout(); err != nil {
				return err
			}
			mem, err := a.secureMemoryLine()
			if err != nil {
				return err
			}
			ka, err := a.keyAccess()
			if err != nil {
				return err
			}
			_, err = fmt.Fprintf(a.stdout, "enc-pipe %s (stream format v%d, %s %s/%s)\n%s\nkey access: %s (--key-access)\n",
				version(), stream.Version, runtime.Version(), runtime.GOOS, runtime.GOARCH, mem, ka)
			return outputErr(err)
		},
	}
}

// version is the module version, or the VCS revision of a development build.
func version() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "(unknown)"
	}
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	rev, dirty := "", false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if rev == "" {
		return "devel"
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if dirty {
		rev += "-dirty"
	}
	return "devel-" + rev
}
