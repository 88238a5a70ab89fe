package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/enc-pipe/enc-pipe/cmd/enc-pipe/internal/textsafe"
	"github.com/enc-pipe/enc-pipe/envelope"
)

func (a *app) newKeysCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "keys",
		Short: "List, rotate, revoke and shred keys in the metastore",
		Long: `Administer the system keys (one per service and product) and intermediate
keys (one per partition) in the configured metastore. Data keys are not
stored: each lives, wrapped, inside its stream or record.`,
		Example: `  enc-pipe keys list
  enc-pipe keys rotate --partition user-42
  enc-pipe keys revoke --partition user-42
  enc-pipe keys shred --partition user-42 --yes-destroy-data`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return usageErrorf("keys needs a subcommand: list, rotate, revoke or shred")
		},
	}
	cmd.AddCommand(a.newKeysListCommand(), a.newKeysRotateCommand(), a.newKeysRevokeCommand(), a.newKeysShredCommand())
	return cmd
}

// keyRow is one stored key as keys list prints it.
type keyRow struct {
	Kind      string   `json:"kind"` // "system" or "intermediate"
	ID        string   `json:"id"`
	Partition string   `json:"partition,omitempty"`
	Created   int64    `json:"created"`
	Revoked   bool     `json:"revoked"`
	Parent    *keyInfo `json:"parent,omitempty"`
}

// listKeys returns the system keys of the configured service and product
// and the intermediate keys of one partition (or of all partitions).
func (a *app) listKeys(ctx context.Context, be *backend, partition string) ([]keyRow, error) {
	var rows []keyRow
	sk, err := be.factory.ListKeys(ctx, be.factory.SystemKeyID())
	if err != nil {
		return nil, keyError(err, "cannot list keys")
	}
	for _, r := range sk {
		if r.ID != be.factory.SystemKeyID() {
			continue // a longer id with the same prefix
		}
		rows = append(rows, newKeyRow("system", "", r))
	}
	prefix := "_IK_"
	if partition != "" {
		prefix = be.factory.IntermediateKeyID(partition)
	}
	ik, err := be.factory.ListKeys(ctx, prefix)
	if err != nil {
		return nil, keyError(err, "cannot list keys")
	}
	for _, r := range ik {
		p, ok := partitionFromKeyID(r.ID, a.g.service, a.g.product)
		if !ok || (partition != "" && r.ID != prefix) {
			continue
		}
		if be.factory.IntermediateKeyID(p) != r.ID {
			continue // another region's suffix
		}
		rows = append(rows, newKeyRow("intermediate", p, r))
	}
	return rows, nil
}

func newKeyRow(kind, partition string, r *envelope.EnvelopeKeyRecord) keyRow {
	row := keyRow{Kind: kind, ID: r.ID, Partition: partition, Created: r.Created, Revoked: r.Revoked}
	if r.ParentKeyMeta != nil {
		row.Parent = &keyInfo{ID: r.ParentKeyMeta.ID, Created: r.ParentKeyMeta.Created}
	}
	return row
}

func (a *app) newKeysListCommand() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List system and intermediate keys",
		Long: `List the system keys of the configured service and product, and the
intermediate keys of every partition (or of --partition only), oldest first,
with their creation time, revocation flag and the key that wraps them. Key
bytes are never shown.`,
		Example: `  enc-pipe keys list
  enc-pipe keys list --partition user-42
  enc-pipe keys list --json --service billing --product api --metastore sqlite:///srv/keys.db`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := a.requireStdout(); err != nil {
				return err
			}
			ctx := cmd.Context()
			be, err := a.openBackend(ctx, false)
			if err != nil {
				return err
			}
			defer be.Close()
			partition := ""
			if a.partitionExplicit(cmd) {
				partition = a.g.partition
			}
			rows, err := a.listKeys(ctx, be, partition)
			if err != nil {
				return err
			}
			if asJSON {
				if rows == nil {
					rows = []keyRow{}
				}
				enc := json.NewEncoder(a.stdout)
				enc.SetIndent("", "  ")
				return outputErr(enc.Encode(rows))
			}
			return outputErr(printKeyRows(a.stdout, rows))
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON for machines")
	return cmd
}

// printKeyRows writes rows as a table for people. Key ids and partitions
// come from the metastore, which other clients write, and are escaped with
// textsafe.Escape (a tab would also break the columns).
func printKeyRows(w io.Writer, rows []keyRow) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "KIND\tID\tCREATED\tREVOKED\tWRAPPED BY")
	for _, r := range rows {
		parent := "master key"
		if r.Parent != nil {
			parent = fmt.Sprintf("%s (%s)", textsafe.Escape(r.Parent.ID), unixTime(r.Parent.Created))
		}
		revoked := "no"
		if r.Revoked {
			revoked = "yes"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.Kind, textsafe.Escape(r.ID), unixTime(r.Created), revoked, parent)
	}
	return tw.Flush()
}

func (a *app) newKeysRotateCommand() *cobra.Command {
	var system bool
	cmd := &cobra.Command{
		Use:   "rotate",
		Short: "Create a new intermediate key (and system key) now",
		Long: `Create a new intermediate key for the partition now, even though the current
one has not expired; new streams and records use it, old ones keep
decrypting with the key they name. With --system a new system key is made
first and wraps the new intermediate key. Other running processes pick new
keys up when they re-check their cached ones.`,
		Example: `  enc-pipe keys rotate --partition user-42
  enc-pipe keys rotate --system --partition default`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			if a.g.partition == "" {
				return usageErrorf("--partition: empty partition id")
			}
			be, err := a.openBackend(ctx, true)
			if err != nil {
				return err
			}
			defer be.Close()
			if system {
				m, err := be.factory.RotateSystemKey(ctx)
				if err != nil {
					return keyError(err, "cannot rotate the system key")
				}
				fmt.Fprintf(a.stdout, "new system key %s (created %s)\n", textsafe.Escape(m.ID), unixTime(m.Created))
			}
			m, err := be.factory.RotateIntermediateKey(ctx, a.g.partition)
			if err != nil {
				return keyError(err, "cannot rotate the intermediate key of %q", a.g.partition)
			}
			_, err = fmt.Fprintf(a.stdout, "new intermediate key %s (created %s)\n", textsafe.Escape(m.ID), unixTime(m.Created))
			return outputErr(err)
		},
	}
	cmd.Flags().BoolVar(&system, "system", false, "also rotate the system key of the service and product")
	return cmd
}

func (a *app) newKeysRevokeCommand() *cobra.Command {
	var system bool
	var created int64
	cmd := &cobra.Command{
		Use:   "revoke",
		Short: "Mark keys revoked: never used for new data, still used to decrypt",
		Long: `Mark the partition's intermediate keys revoked (every version, or the one
created at --created, in Unix seconds as "keys list --json" shows). A revoked
key is never used to encrypt again: the next write creates a new one. Data
already written under it still decrypts; to make it undecryptable, use
"keys shred". With --system the system keys are revoked instead.`,
		Example: `  enc-pipe keys revoke --partition user-42
  enc-pipe keys revoke --partition user-42 --created 1795749120
  enc-pipe keys revoke --system`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			if !system && !a.partitionExplicit(cmd) {
				return usageErrorf("say which keys to revoke: --partition ID or --system")
			}
			be, err := a.openBackend(ctx, false)
			if err != nil {
				return err
			}
			defer be.Close()
			rows, err := a.listKeys(ctx, be, a.g.partition)
			if err != nil {
				return err
			}
			kind := "intermediate"
			if system {
				kind = "system"
			}
			n := 0
			for _, r := range rows {
				if r.Kind != kind || (created != 0 && r.Created != created) {
					continue
				}
				if err := be.factory.RevokeKey(ctx, r.ID, r.Created); err != nil {
					return keyError(err, "cannot revoke %s", r.ID)
				}
				fmt.Fprintf(a.stdout, "revoked %s key %s (created %s)\n", kind, textsafe.Escape(r.ID), unixTime(r.Created))
				n++
			}
			if n == 0 {
				return keyError(envelope.ErrNotFound, "no %s key to revoke", kind)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&system, "system", false, "revoke the system keys of the service and product")
	cmd.Flags().Int64Var(&created, "created", 0, "revoke only the version created at this Unix time")
	return cmd
}

func (a *app) newKeysShredCommand() *cobra.Command {
	var confirm bool
	cmd := &cobra.Command{
		Use:   "shred",
		Short: "Delete a partition's intermediate keys: its data becomes undecryptable",
		Long: `Crypto-shred a partition: delete every version of its intermediate key from
the metastore. Every stream and record ever written under the partition
becomes permanently undecryptable, here and in every Asherah client sharing
the metastore. There is no undo, short of restoring a metastore backup.

The partition must be named with --partition (or ENC_PIPE_PARTITION), and
--yes-destroy-data must be given.`,
		Example: `  enc-pipe keys shred --partition user-42 --yes-destroy-data`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			if !a.partitionExplicit(cmd) || a.g.partition == "" {
				return usageErrorf("keys shred needs the partition to destroy: --partition ID")
			}
			if !confirm {
				return usageErrorf("keys shred makes every stream and record of partition %q undecryptable forever: add --yes-destroy-data to confirm", a.g.partition)
			}
			be, err := a.openBackend(ctx, false)
			if err != nil {
				return err
			}
			defer be.Close()
			id := be.factory.IntermediateKeyID(a.g.partition)
			n, err := be.factory.DeleteKeys(ctx, id)
			if err != nil {
				return keyError(err, "cannot shred partition %q", a.g.partition)
			}
			if n == 0 {
				return keyError(envelope.ErrNotFound, "partition %q has no intermediate key %s", a.g.partition, id)
			}
			a.noticef("SHREDDED partition %q: deleted %d version(s) of %s; every stream and record of this partition is now PERMANENTLY UNDECRYPTABLE", a.g.partition, n, id)
			return nil
		},
	}
	cmd.Flags().BoolVar(&confirm, "yes-destroy-data", false, "confirm that the partition's data is to become undecryptable")
	return cmd
}
