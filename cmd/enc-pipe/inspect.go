package main

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/spf13/cobra"

	"github.com/enc-pipe/enc-pipe/cmd/enc-pipe/internal/textsafe"
	"github.com/enc-pipe/enc-pipe/envelope"
	"github.com/enc-pipe/enc-pipe/stream"
)

// inspection is what inspect prints; its JSON form is the --json output.
type inspection struct {
	Input         string            `json:"input"`
	Size          *int64            `json:"size,omitempty"`
	FormatVersion int               `json:"format_version"`
	Suite         string            `json:"suite"`
	Partition     string            `json:"partition"`
	ChunkSize     int               `json:"chunk_size"`
	Compression   string            `json:"compression"`
	ContentType   string            `json:"content_type,omitempty"`
	Metadata      map[string]string `json:"metadata,omitempty"`
	HeaderSize    int64             `json:"header_size"`
	DataKey       *keyInfo          `json:"data_key,omitempty"`
	WrappedBy     *keyInfo          `json:"wrapped_by,omitempty"`
	Plaintext     *int64            `json:"plaintext_size,omitempty"`
	Authenticated bool              `json:"authenticated"`
}

type keyInfo struct {
	ID      string `json:"id,omitempty"`
	Created int64  `json:"created"`
}

func (a *app) newInspectCommand() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "inspect [FILE]",
		Short: "Show an encrypted stream's header without decrypting it",
		Long: `Print the header of an enc-pipe stream (default standard input): format
version, partition, the data key's creation time and the intermediate key that
wraps it, chunk size, compression, content type and metadata. No key is
loaded and nothing is decrypted, so the header is NOT authenticated: treat
what it says as a claim until "enc-pipe decrypt" succeeds.`,
		Example: `  enc-pipe inspect backup.tar.ep
  enc-pipe inspect --json backup.tar.ep | jq .partition
  curl -s https://example.com/x.ep | enc-pipe inspect`,
		Args: maxArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := "-"
			if len(args) == 1 {
				name = args[0]
			}
			return a.runInspect(cmd, name, asJSON)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON for machines")
	return cmd
}

func (a *app) runInspect(cmd *cobra.Command, name string, asJSON bool) error {
	if err := a.requireStdout(); err != nil {
		return err
	}
	in, err := a.openInput(cmd.Context(), name)
	if err != nil {
		return err
	}
	defer in.Close()
	h, err := stream.ReadHeader(readTagger{in})
	if err != nil {
		return classifyStreamErr(err, "cannot read the header")
	}
	raw := h.Bytes()
	ins := inspection{
		Input:         in.Name(),
		FormatVersion: int(raw[4]),
		Suite:         suiteName(raw[5]),
		Partition:     h.Partition(),
		ChunkSize:     h.ChunkSize(),
		Compression:   h.Compression().String(),
		ContentType:   h.ContentType(),
		Metadata:      h.Metadata(),
		HeaderSize:    h.Len(),
	}
	var ekr envelope.EnvelopeKeyRecord
	if err := json.Unmarshal(h.KeyRecord(), &ekr); err == nil {
		ins.DataKey = &keyInfo{Created: ekr.Created}
		if ekr.ParentKeyMeta != nil {
			ins.WrappedBy = &keyInfo{ID: ekr.ParentKeyMeta.ID, Created: ekr.ParentKeyMeta.Created}
		}
	}
	if size := in.size(); size >= 0 {
		ins.Size = &size
		if h.Compression() == stream.CodecNone {
			if pt, ok := plaintextSize(size, h); ok {
				ins.Plaintext = &pt
			}
		}
	}
	if asJSON {
		enc := json.NewEncoder(a.stdout)
		enc.SetIndent("", "  ")
		return outputErr(enc.Encode(ins))
	}
	return outputErr(printInspection(a.stdout, &ins))
}

func outputErr(err error) error {
	if err == nil {
		return nil
	}
	return classifyStreamErr(&outputError{err}, "cannot write output")
}

func suiteName(s byte) string {
	if s == stream.SuiteAES256GCMHKDFSHA256 {
		return "AES-256-GCM, HKDF-SHA-256"
	}
	return fmt.Sprintf("unknown suite %#x", s)
}

// plaintextSize computes the plaintext length of an uncompressed stream of
// size bytes; ok is false when size cannot be a whole stream.
func plaintextSize(size int64, h *stream.Header) (int64, bool) {
	payload := size - h.Len()
	cs := int64(h.ChunkSize()) + stream.TagSize
	if payload < stream.TagSize {
		return 0, false
	}
	chunks := (payload + cs - 1) / cs
	return payload - chunks*stream.TagSize, true
}

// printInspection writes ins for people. Every text field comes from the
// unauthenticated header or the file name and is escaped with
// textsafe.Escape, so that it cannot redraw the terminal.
func printInspection(w io.Writer, ins *inspection) error {
	var b []byte
	line := func(k, format string, a ...any) {
		b = fmt.Appendf(b, "%-14s %s\n", k+":", fmt.Sprintf(format, a...))
	}
	esc := textsafe.Escape
	if ins.Size != nil {
		line("input", "%s (%d bytes)", esc(ins.Input), *ins.Size)
	} else {
		line("input", "%s", esc(ins.Input))
	}
	line("format", "enc-pipe v%d, %s", ins.FormatVersion, esc(ins.Suite))
	line("partition", "%s", esc(ins.Partition))
	if ins.DataKey != nil {
		line("data key", "created %s", unixTime(ins.DataKey.Created))
	}
	if ins.WrappedBy != nil {
		line("wrapped by", "%s (created %s)", esc(ins.WrappedBy.ID), unixTime(ins.WrappedBy.Created))
	}
	line("chunk size", "%d bytes", ins.ChunkSize)
	line("compression", "%s", esc(ins.Compression))
	if ins.ContentType != "" {
		line("content type", "%s", esc(ins.ContentType))
	}
	keys := make([]string, 0, len(ins.Metadata))
	for k := range ins.Metadata {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		line("metadata", "%s=%s", esc(k), esc(ins.Metadata[k]))
	}
	line("header", "%d bytes", ins.HeaderSize)
	if ins.Plaintext != nil {
		line("plaintext", "%d bytes", *ins.Plaintext)
	}
	line("authenticated", "no (inspect does not load keys; decrypt verifies)")
	_, err := w.Write(b)
	return err
}

func unixTime(sec int64) string {
	return time.Unix(sec, 0).UTC().Format(time.RFC3339)
}
