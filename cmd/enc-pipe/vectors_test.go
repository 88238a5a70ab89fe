package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/enc-pipe/enc-pipe/envelope"
	"github.com/enc-pipe/enc-pipe/envelope/kms/statickms"
	"github.com/enc-pipe/enc-pipe/internal/asherahvectors"
)

// asherahJSON is a vector's DataRowRecord as Asherah wrote it, or
// re-encoded where the vectors leave the text out (the 1 MiB record).
func asherahJSON(t *testing.T, r asherahvectors.Record) []byte {
	t.Helper()
	if r.DRRJSON != "" {
		return []byte(r.DRRJSON)
	}
	b, err := json.Marshal(r.DRR)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// vectorStore creates a SQLite metastore holding the rows of the Asherah
// vectors' metastore.json, and the static master key file, and returns the
// enc-pipe flags that select them.
func vectorStore(t *testing.T) []string {
	t.Helper()
	dir := t.TempDir()
	dbPath := filepath.Join(dir, "metastore.db")
	keyPath := filepath.Join(dir, "master.key")
	if err := os.WriteFile(keyPath, []byte(asherahvectors.MasterKey), 0o600); err != nil {
		t.Fatal(err)
	}
	rows := asherahvectors.MustLoad(t).Rows
	ctx := context.Background()
	store, closeDB, err := openSQLiteStore(ctx, dbPath)
	if err != nil {
		t.Fatal(err)
	}
	defer closeDB()
	for _, r := range rows {
		rec := r.Record
		if err := store.Store(ctx, r.ID, r.Created, &rec); err != nil {
			t.Fatalf("storing %s/%d: %v", r.ID, r.Created, err)
		}
	}
	return []string{"--metastore", "sqlite://" + dbPath, "--kms", "static:" + keyPath, "--service", "svc", "--product", "prod"}
}

// Every positive Asherah vector decrypts with "records decrypt" to its
// plaintext (checked by length and SHA-256), and every negative one fails
// with no output.
func TestRecordsAsherahVectors(t *testing.T) {
	flags := vectorStore(t)
	set := asherahvectors.MustLoad(t)
	recs := set.Records

	bySuffix := map[string][]asherahvectors.Record{}
	for _, r := range recs {
		bySuffix[r.Session.RegionSuffix] = append(bySuffix[r.Session.RegionSuffix], r)
	}
	if len(bySuffix[""]) < 10 || len(bySuffix["us-west-2"]) == 0 {
		t.Fatalf("unexpected vector set: %d unsuffixed, %d suffixed", len(bySuffix[""]), len(bySuffix["us-west-2"]))
	}
	for suffix, group := range bySuffix {
		var in bytes.Buffer
		for _, r := range group {
			var compact bytes.Buffer
			if err := json.Compact(&compact, asherahJSON(t, r)); err != nil {
				t.Fatal(err)
			}
			in.Write(compact.Bytes())
			in.WriteByte('\n')
		}
		args := append([]string{"records", "decrypt", "--base64"}, flags...)
		if suffix != "" {
			args = append(args, "--region-suffix", suffix)
		}
		cmd := command(t, t.TempDir(), args...)
		cmd.Stdin = &in
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("suffix %q: %v: %s", suffix, err, stderr.String())
		}
		sc := bufio.NewScanner(bytes.NewReader(out))
		sc.Buffer(nil, 4<<20)
		i := 0
		for ; sc.Scan(); i++ {
			if i >= len(group) {
				t.Fatalf("more output lines than records")
			}
			pt, err := base64.StdEncoding.DecodeString(sc.Text())
			if err != nil {
				t.Fatalf("%s: %v", group[i].Name, err)
			}
			if err := group[i].Plaintext.Check(pt); err != nil {
				t.Errorf("%s: %v", group[i].Name, err)
			}
		}
		if i != len(group) {
			t.Errorf("suffix %q: %d output lines for %d records", suffix, i, len(group))
		}
	}

	negs := set.Negatives
	for _, n := range negs {
		var compact bytes.Buffer
		json.Compact(&compact, n.DRR)
		args := append([]string{"records", "decrypt", "--base64"}, flags...)
		args = append(args, "--service", n.Session.Service, "--product", n.Session.Product, "--partition", n.Session.Partition)
		cmd := command(t, t.TempDir(), args...)
		cmd.Stdin = bytes.NewReader(append(compact.Bytes(), '\n'))
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		code := exitCodeOf(t, err)
		if (code != 3 && code != 4) || len(out) != 0 {
			t.Errorf("%s: exit code %d, %d bytes of output; want 3 or 4 and none", n.Name, code, len(out))
		}
		if !strings.HasPrefix(stderr.String(), "enc-pipe: error: line 1: ") || strings.Count(stderr.String(), "\n") != 1 {
			t.Errorf("%s: stderr %q", n.Name, stderr.String())
		}
	}
}

// Records written by "records encrypt" have Asherah's JSON shape and
// decrypt through the envelope library against the same metastore.
func TestRecordsEncryptDecryptsInLibrary(t *testing.T) {
	flags := vectorStore(t)
	plain := [][]byte{{}, []byte("A"), pseudoRandom(1000), []byte(`{"json":true}`)}
	var in bytes.Buffer
	for _, p := range plain {
		in.WriteString(base64.StdEncoding.EncodeToString(p) + "\n")
	}
	args := append([]string{"records", "encrypt", "--base64", "--partition", "lib-check"}, flags...)
	cmd := command(t, t.TempDir(), args...)
	cmd.Stdin = &in
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%v: %s", err, stderr.String())
	}
	lines := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
	if len(lines) != len(plain) {
		t.Fatalf("%d lines for %d records", len(lines), len(plain))
	}

	ctx := context.Background()
	dbPath := strings.TrimPrefix(flags[1], "sqlite://")
	store, closeDB, err := openSQLiteStore(ctx, dbPath)
	if err != nil {
		t.Fatal(err)
	}
	defer closeDB()
	kms, err := statickms.New([]byte(asherahvectors.MasterKey))
	if err != nil {
		t.Fatal(err)
	}
	defer kms.Close()
	f, err := envelope.NewSessionFactory(&envelope.Config{Service: "svc", Product: "prod"}, store, kms, envelope.NewAES256GCM())
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s, err := f.GetSession("lib-check")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for i, line := range lines {
		var shape map[string]json.RawMessage
		var keyShape map[string]json.RawMessage
		if err := json.Unmarshal([]byte(line), &shape); err != nil || len(shape) != 2 || shape["Data"] == nil {
			t.Fatalf("line %d is not a DataRowRecord: %s", i+1, line)
		}
		if err := json.Unmarshal(shape["Key"], &keyShape); err != nil {
			t.Fatalf("line %d: Key: %v", i+1, err)
		}
		if _, revoked := keyShape["Revoked"]; revoked || len(keyShape) != 3 {
			t.Errorf("line %d: Key has fields %v, want Created, Key, ParentKeyMeta", i+1, keyShape)
		}
		var drr envelope.DataRowRecord
		if err := json.Unmarshal([]byte(line), &drr); err != nil {
			t.Fatal(err)
		}
		if len(drr.Data) != len(plain[i])+28 || drr.Key.ParentKeyMeta.ID != "_IK_lib-check_svc_prod" || drr.Key.ParentKeyMeta.Created%60 != 0 {
			t.Errorf("line %d: data %d bytes, parent %+v", i+1, len(drr.Data), drr.Key.ParentKeyMeta)
		}
		got, err := s.Decrypt(ctx, drr)
		if err != nil {
			t.Fatalf("line %d: %v", i+1, err)
		}
		if !bytes.Equal(got, plain[i]) {
			t.Errorf("line %d: decrypted to %d bytes, want %d", i+1, len(got), len(plain[i]))
		}
	}
}
