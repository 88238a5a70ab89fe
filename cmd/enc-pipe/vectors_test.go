package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/enc-pipe/enc-pipe/envelope"
	"github.com/enc-pipe/enc-pipe/envelope/kms/statickms"
)

const vectorMasterKey = "thisIsAStaticMasterKeyForTesting"

type vectorRow struct {
	ID      string                     `json:"id"`
	Created int64                      `json:"created"`
	Record  envelope.EnvelopeKeyRecord `json:"record"`
}

type vectorRecord struct {
	Name     string `json:"name"`
	Scenario string `json:"scenario"`
	Session  struct {
		Service      string `json:"service"`
		Product      string `json:"product"`
		Partition    string `json:"partition"`
		RegionSuffix string `json:"region_suffix"`
	} `json:"session"`
	Plaintext struct {
		Length int    `json:"length"`
		SHA256 string `json:"sha256"`
	} `json:"plaintext"`
	DRR json.RawMessage `json:"drr"`
}

func readJSON(t *testing.T, name string, v any) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(vectorsDir(t), name))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatal(err)
	}
}

// vectorStore creates a SQLite metastore holding the rows of the Asherah
// vectors' metastore.json, and the static master key file, and returns the
// enc-pipe flags that select them.
func vectorStore(t *testing.T) []string {
	t.Helper()
	dir := t.TempDir()
	dbPath := filepath.Join(dir, "metastore.db")
	keyPath := filepath.Join(dir, "master.key")
	if err := os.WriteFile(keyPath, []byte(vectorMasterKey), 0o600); err != nil {
		t.Fatal(err)
	}
	var rows []vectorRow
	readJSON(t, "metastore.json", &rows)
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
	var recs []vectorRecord
	readJSON(t, "records.json", &recs)

	bySuffix := map[string][]vectorRecord{}
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
			if err := json.Compact(&compact, r.DRR); err != nil {
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
			sum := sha256.Sum256(pt)
			if len(pt) != group[i].Plaintext.Length || hex.EncodeToString(sum[:]) != group[i].Plaintext.SHA256 {
				t.Errorf("%s: got %d bytes with sha256 %x", group[i].Name, len(pt), sum)
			}
		}
		if i != len(group) {
			t.Errorf("suffix %q: %d output lines for %d records", suffix, i, len(group))
		}
	}

	var negs []struct {
		Name    string `json:"name"`
		Session struct {
			Service   string `json:"service"`
			Product   string `json:"product"`
			Partition string `json:"partition"`
		} `json:"session"`
		DRR json.RawMessage `json:"drr"`
	}
	readJSON(t, "negative.json", &negs)
	if len(negs) == 0 {
		t.Fatal("no negative vectors")
	}
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
	kms, err := statickms.New([]byte(vectorMasterKey))
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
