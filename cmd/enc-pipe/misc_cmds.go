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
does the same implicitly.

Back up master.key: it wraps every key in metastore.db, and without it
nothing encrypted with them can be decrypted.`,
		Example: `  enc-pipe init
  ENC_PIPE_HOME=/srv/keys enc-pipe init`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := a.resolveSettings()
			if err != nil {
				return err
			}
			if !s.usesHome {
				return usageErrorf("init creates the embedded default; --metastore and --kms are both set, so there is nothing to create")
			}
			created, err := a.ensureHome(cmd.Context(), s)
			if err != nil {
				return err
			}
			if !created {
				a.noticef("%s already holds the embedded default; nothing was changed", s.home)
			}
			return nil
		},
	}
}

func (a *app) newVersionCommand() *cobra.Command {
	return &cobra.Command{
		Use:     "version",
		Short:   "Print the version",
		Example: `  enc-pipe version`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := fmt.Fprintf(a.stdout, "enc-pipe %s (stream format v%d, %s %s/%s)\n",
				version(), stream.Version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
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
