package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/enc-pipe/enc-pipe/internal/s3test"
	"github.com/enc-pipe/enc-pipe/internal/testenv"
	"github.com/enc-pipe/enc-pipe/stream"
)

// largeObjectVar lowers the size of the large S3 round trip on a
// developer's machine; under CI it may not go below the default.
const largeObjectVar = "ENCPIPE_TEST_S3_LARGE_SIZE"

// largeObjectSize is the size of the multi-part round trip: 256 MiB,
// unless largeObjectVar says otherwise outside CI.
func largeObjectSize(t *testing.T) int64 {
	const def = 256 << 20
	v := os.Getenv(largeObjectVar)
	if v == "" {
		return def
	}
	n, err := parseSize(v)
	if err != nil {
		t.Fatalf("%s=%q: %v", largeObjectVar, v, err)
	}
	if n < def && testenv.InCI() {
		t.Fatalf("%s=%q: under CI the large object is at least %d bytes", largeObjectVar, v, def)
	}
	t.Logf("large object: %d bytes (%s)", n, largeObjectVar)
	return n
}

// s3env is a bucket on the test server, and commands that reach it.
type s3env struct {
	client   *s3.Client
	bucket   string
	endpoint string
	home     string
	dir      string
}

func newS3Env(t *testing.T) *s3env {
	t.Helper()
	ep := s3test.Endpoint(t)
	c := s3test.Client(t, ep)
	dir := t.TempDir()
	e := &s3env{client: c, bucket: s3test.Bucket(t, c), endpoint: ep, home: filepath.Join(dir, "home"), dir: dir}
	mustRun(t, e.cmd("init"))
	return e
}

// cmd is an enc-pipe command against the test server (or endpoint, when
// given as the first argument "@URL").
func (e *s3env) cmd(args ...string) *exec.Cmd {
	ep := e.endpoint
	if len(args) > 0 && strings.HasPrefix(args[0], "@") {
		ep, args = args[0][1:], args[1:]
	}
	c := command(nil, e.home, args...)
	// versitygw answers for us-east-1, its default region.
	c.Env = append(c.Env, "ENC_PIPE_S3_ENDPOINT="+ep, "ENC_PIPE_S3_REGION=us-east-1", "ENC_PIPE_PARTITION=p")
	return c
}

func (e *s3env) url(key string) string { return "s3://" + e.bucket + "/" + key }

// writeRandomFile writes n pseudo-random bytes to a file and returns its
// path and SHA-256.
func writeRandomFile(t *testing.T, path string, seed uint64, n int64) [32]byte {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	for off := int64(0); off < n; off += 8 << 20 {
		b := s3test.Random(seed+uint64(off), int(min(8<<20, n-off)))
		h.Write(b)
		if _, err := f.Write(b); err != nil {
			t.Fatal(err)
		}
	}
	return [32]byte(h.Sum(nil))
}

func fileSHA(t *testing.T, path string) [32]byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return [32]byte(h.Sum(nil))
}

func (e *s3env) head(t *testing.T, key string, part int32) *s3.HeadObjectOutput {
	t.Helper()
	in := &s3.HeadObjectInput{Bucket: &e.bucket, Key: &key}
	if part > 0 {
		in.PartNumber = aws.Int32(part)
	}
	out, err := e.client.HeadObject(context.Background(), in)
	if err != nil {
		t.Fatalf("head %s part %d: %v", key, part, err)
	}
	return out
}

func inspectJSON(t *testing.T, c *exec.Cmd) map[string]any {
	t.Helper()
	out, err := c.Output()
	if err != nil {
		t.Fatalf("inspect: %v", err)
	}
	var m map[string]any
	if err := json.Unmarshal(out, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// TestS3RoundTripOfAMultipartObject takes a large object through every
// combination of file, S3 and pipe: file → S3 → S3 (decrypt) → S3
// (encrypt) → file, and pipe → S3 → pipe. The ciphertext object is marked
// with its format and partition, its parts hold whole chunks, and inspect
// reads it with one small request.
func TestS3RoundTripOfAMultipartObject(t *testing.T) {
	e := newS3Env(t)
	size := largeObjectSize(t)
	plain := filepath.Join(e.dir, "plain")
	want := writeRandomFile(t, plain, 1, size)

	mustRun(t, e.cmd("encrypt", plain, e.url("a.ep")))
	mustRun(t, e.cmd("decrypt", e.url("a.ep"), e.url("a.plain")))
	mustRun(t, e.cmd("encrypt", e.url("a.plain"), e.url("b.ep")))
	back := filepath.Join(e.dir, "back")
	mustRun(t, e.cmd("decrypt", e.url("b.ep"), back))
	if fileSHA(t, back) != want {
		t.Fatal("file -> S3 -> S3 -> S3 -> file changed the data")
	}
	if got := aws.ToInt64(e.head(t, "a.plain", 0).ContentLength); got != size {
		t.Errorf("decrypted object holds %d bytes, want %d", got, size)
	}

	// The object says what it is, and its parts hold whole chunks.
	ins := inspectJSON(t, e.cmd("inspect", "--json", e.url("a.ep")))
	hdr := int64(ins["header_size"].(float64))
	chunk := int64(ins["chunk_size"].(float64))
	if ins["partition"] != "p" || int64(ins["plaintext_size"].(float64)) != size {
		t.Errorf("inspect: %v", ins)
	}
	h := e.head(t, "a.ep", 0)
	if h.Metadata[metaFormat] != "1" || h.Metadata[metaPartition] != "p" {
		t.Errorf("metadata %v: want %s=1, %s=p", h.Metadata, metaFormat, metaPartition)
	}
	etag := strings.Trim(aws.ToString(h.ETag), `"`)
	parts, _ := strconv.Atoi(etag[strings.LastIndex(etag, "-")+1:])
	if parts < 2 {
		t.Fatalf("ETag %s: not a multipart object", *h.ETag)
	}
	ct := chunk + stream.TagSize
	p1 := aws.ToInt64(e.head(t, "a.ep", 1).ContentLength)
	p2 := aws.ToInt64(e.head(t, "a.ep", 2).ContentLength)
	if (p1-hdr)%ct != 0 || p2%ct != 0 || p1-hdr != p2 {
		t.Errorf("part 1 holds %d bytes, part 2 %d: want header (%d) + k chunks of %d, then k chunks", p1, p2, hdr, ct)
	}

	// Pipes at either end.
	small := s3test.Random(2, 3<<20+5)
	enc := e.cmd("encrypt", "-", e.url("c.ep"))
	enc.Stdin = bytes.NewReader(small)
	mustRun(t, enc)
	dec := e.cmd("decrypt", e.url("c.ep"), "-")
	got, err := dec.Output()
	if err != nil || !bytes.Equal(got, small) {
		t.Fatalf("pipe -> S3 -> pipe: %d bytes, %v", len(got), err)
	}

	// inspect reads the header with one small ranged GET.
	u, _ := url.Parse(e.endpoint)
	px := s3test.NewProxy(t, u.Host)
	ins2 := inspectJSON(t, e.cmd("@"+px.URL, "inspect", "--json", e.url("a.ep")))
	if ins2["header_size"] != ins["header_size"] {
		t.Errorf("inspect through the proxy: %v", ins2)
	}
	if px.Received() > s3Prefetch+2048 {
		t.Errorf("inspect received %d bytes: want one GET of %d bytes and its headers", px.Received(), s3Prefetch)
	}
}

// TestS3DecryptRangeReadsOnlyTheChunksOfTheRange decrypts ranges at and
// around chunk and part boundaries of an S3 object, and counts the bytes
// that reach the command through a proxy: the prefetch and the chunks of
// the range, the final chunk only when the range reaches it.
func TestS3DecryptRangeReadsOnlyTheChunksOfTheRange(t *testing.T) {
	e := newS3Env(t)
	const chunk = 4096
	const ct = chunk + stream.TagSize
	plainData := s3test.Random(3, 12<<20+777)
	plain := filepath.Join(e.dir, "plain")
	os.WriteFile(plain, plainData, 0o644)
	mustRun(t, e.cmd("encrypt", "--chunk-size", "4KiB", "--part-size", "5MiB", plain, e.url("r.ep")))
	ins := inspectJSON(t, e.cmd("inspect", "--json", e.url("r.ep")))
	hdr := int64(ins["header_size"].(float64))
	objSize := int64(ins["size"].(float64))
	p1 := aws.ToInt64(e.head(t, "r.ep", 1).ContentLength)
	partPlain := (p1 - hdr) / ct * chunk // plaintext offset of part 2
	size := int64(len(plainData))
	nChunks := (size + chunk - 1) / chunk
	finalLo := hdr + (nChunks-1)*ct

	u, _ := url.Parse(e.endpoint)
	for _, r := range []struct{ off, n int64 }{
		{0, 10}, {chunk - 1, 2}, {chunk, chunk}, {partPlain - 1, 2}, {partPlain, 3 * chunk}, {partPlain - 10, 20},
		{2*partPlain + 100, 50000}, {size - 5, 5}, {1 << 20, 1 << 20}, {size - chunk - 3, 10},
	} {
		px := s3test.NewProxy(t, u.Host)
		c := e.cmd("@"+px.URL, "decrypt", "--range", fmt.Sprintf("%d:%d", r.off, r.n), e.url("r.ep"))
		got, err := c.Output()
		if err != nil || !bytes.Equal(got, plainData[r.off:r.off+r.n]) {
			t.Fatalf("--range %d:%d: %d bytes, %v", r.off, r.n, len(got), err)
		}
		first, last := r.off/chunk, (r.off+r.n-1)/chunk
		spans := []span{{0, max(hdr, s3Prefetch)}}
		responses := int64(1) // the prefetch
		if lo := hdr + first*ct; lo < finalLo {
			spans = append(spans, span{lo, min(hdr+(last+1)*ct, finalLo)})
			responses++ // one GET for the chunks of the range
		}
		if r.off+r.n > (nChunks-1)*chunk {
			// The range reaches the final chunk, which is read (and
			// authenticated) on its own, first.
			spans = append(spans, span{finalLo, objSize})
			responses++
		}
		body := unionLen(spans)
		// Each response's headers are under 1 KiB (about 0.7 KiB). Now
		// and then the proxy passes on one response more than the
		// source's request count (transfer's test counts the requests
		// exactly): 1 KiB more for it.
		slack := (responses + 1) * 1024
		if px.Received() < body || px.Received() > body+slack {
			t.Errorf("--range %d:%d: %d bytes received, want %d of object and the headers of %d responses", r.off, r.n, px.Received(), body, responses)
		}
		// The bound: range + two chunks (with the range's tags)
		// + header (the prefetch), and the response headers.
		if bound := r.n + (last-first+1)*stream.TagSize + 2*ct + max(hdr, s3Prefetch) + slack; px.Received() > bound {
			t.Errorf("--range %d:%d: %d bytes received, over the bound %d", r.off, r.n, px.Received(), bound)
		}
	}
}

// span is a half-open byte interval.
type span struct{ lo, hi int64 }

// unionLen is the number of bytes the spans cover.
func unionLen(ss []span) int64 {
	var total int64
	for i, s := range ss {
		for b := s.lo; b < s.hi; {
			// Skip what an earlier span covered.
			covered := false
			for _, p := range ss[:i] {
				if b >= p.lo && b < p.hi {
					b, covered = p.hi, true
					break
				}
			}
			if !covered {
				next := s.hi
				for _, p := range ss[:i] {
					if p.lo > b && p.lo < next {
						next = p.lo
					}
				}
				total += next - b
				b = next
			}
		}
	}
	return total
}

// TestS3InputResumesAfterADroppedConnection cuts the connection of a
// streaming decrypt and of an S3 -> S3 encrypt in the middle of the
// object: both resume and finish with the right bytes.
func TestS3InputResumesAfterADroppedConnection(t *testing.T) {
	e := newS3Env(t)
	data := s3test.Random(4, 20<<20)
	src := filepath.Join(e.dir, "src")
	os.WriteFile(src, data, 0o644)
	mustRun(t, e.cmd("encrypt", src, e.url("x.ep")))
	s3test.Put(t, e.client, e.bucket, "x.plain", data)
	u, _ := url.Parse(e.endpoint)

	px := s3test.NewProxy(t, u.Host)
	px.CutAfter(3 << 20)
	got, err := e.cmd("@"+px.URL, "decrypt", e.url("x.ep")).Output()
	if err != nil || !bytes.Equal(got, data) || px.Cuts() != 1 {
		t.Fatalf("decrypt through a cut connection: %d bytes, %v, %d cuts", len(got), err, px.Cuts())
	}
	px.CutAfter(5 << 20)
	mustRun(t, e.cmd("@"+px.URL, "encrypt", e.url("x.plain"), e.url("y.ep")))
	if px.Cuts() != 2 {
		t.Fatalf("%d cuts, want 2", px.Cuts())
	}
	got, err = e.cmd("decrypt", e.url("y.ep")).Output()
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("S3 -> S3 encrypt through a cut connection: %d bytes, %v", len(got), err)
	}
}

// TestS3InterruptedUploadLeavesNoObject interrupts an encryption into S3
// while parts are uploaded: a signal, or SIGKILL. No object appears, and
// no incomplete multipart upload is left.
func TestS3InterruptedUploadLeavesNoObject(t *testing.T) {
	for _, c := range []struct {
		name string
		sig  syscall.Signal
		code int
	}{
		{"SIGTERM", syscall.SIGTERM, 143},
		{"SIGINT", syscall.SIGINT, 130},
		{"SIGKILL", syscall.SIGKILL, -1},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := newS3Env(t)
			cmd := e.cmd("encrypt", "--part-size", "5MiB", "-", e.url("k.ep"))
			stdin, err := cmd.StdinPipe()
			if err != nil {
				t.Fatal(err)
			}
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer stdin.Close()
			if _, err := stdin.Write(s3test.Random(5, 12<<20)); err != nil {
				t.Fatal(err)
			}
			// The pipe stays open; parts 1 and 2 are uploaded meanwhile.
			waitFor(t, "the multipart upload", func() bool { return len(s3test.Uploads(t, e.client, e.bucket, "")) == 1 })
			if err := cmd.Process.Signal(c.sig); err != nil {
				t.Fatal(err)
			}
			code := exitCodeOf(t, cmd.Wait())
			if code != c.code {
				t.Errorf("exit code %d, want %d; stderr: %s", code, c.code, stderr.String())
			}
			if s3test.Exists(t, e.client, e.bucket, "k.ep") {
				t.Error("the interrupted upload left an object")
			}
			waitFor(t, "no incomplete upload", func() bool { return len(s3test.Uploads(t, e.client, e.bucket, "")) == 0 })
		})
	}
}

// TestS3RecursiveRoundTripAndResume encrypts a prefix of many small and a
// few large objects, is interrupted, is run again (which finishes what is
// left and skips what is done), then decrypts the whole prefix to a
// directory, and a directory back to S3.
func TestS3RecursiveRoundTripAndResume(t *testing.T) {
	e := newS3Env(t)
	objects := map[string][]byte{}
	for i := range 120 {
		objects[fmt.Sprintf("2026/%02d/small-%03d.jsonl", i%12, i)] = s3test.Random(uint64(100+i), i*97)
	}
	for i := range 2 {
		objects[fmt.Sprintf("2026/large-%d.bin", i)] = s3test.Random(uint64(900+i), 11<<20+i)
	}
	for k, v := range objects {
		s3test.Put(t, e.client, e.bucket, "raw/"+k, v)
	}

	// Interrupted after some objects are written.
	cmd := e.cmd("encrypt", "--recursive", "--jobs", "2", "--part-size", "5MiB", e.url("raw/"), e.url("vault/"))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	written := func() int {
		out, err := e.client.ListObjectsV2(context.Background(), &s3.ListObjectsV2Input{Bucket: &e.bucket, Prefix: aws.String("vault/")})
		if err != nil {
			t.Fatal(err)
		}
		return len(out.Contents)
	}
	waitFor(t, "some objects encrypted", func() bool { return written() >= 20 })
	cmd.Process.Signal(syscall.SIGTERM)
	if code := exitCodeOf(t, cmd.Wait()); code != 143 {
		t.Fatalf("interrupted run: exit %d, want 143; stderr %s", code, stderr.String())
	}
	done := written()
	if done >= len(objects) {
		t.Fatalf("the run finished (%d objects) before the signal: the test needs more objects to interrupt", done)
	}
	if u := s3test.Uploads(t, e.client, e.bucket, ""); len(u) != 0 {
		t.Errorf("%d incomplete uploads after the interruption", len(u))
	}

	// The rerun does the rest.
	out, err := e.cmd("encrypt", "--recursive", e.url("raw/"), e.url("vault/")).CombinedOutput()
	if err != nil {
		t.Fatalf("rerun: %v\n%s", err, out)
	}
	summary := fmt.Sprintf("%d objects under %s: %d encrypted", len(objects), e.url("raw/"), len(objects)-done)
	if !strings.Contains(string(out), summary) || !strings.Contains(string(out), fmt.Sprintf("%d skipped", done)) {
		t.Errorf("rerun summary %q: want %q and %d skipped", out, summary, done)
	}

	// Decrypt the prefix to a directory; compare every file.
	dir := filepath.Join(e.dir, "plain")
	mustRun(t, e.cmd("decrypt", "--recursive", e.url("vault"), dir))
	for k, v := range objects {
		got, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(k)))
		if err != nil || !bytes.Equal(got, v) {
			t.Fatalf("%s: %d bytes, %v", k, len(got), err)
		}
	}
	// A directory to S3 and back.
	mustRun(t, e.cmd("encrypt", "-r", dir, e.url("vault2/")))
	dir2 := filepath.Join(e.dir, "plain2")
	mustRun(t, e.cmd("decrypt", "-r", e.url("vault2/"), dir2))
	for k, v := range objects {
		got, err := os.ReadFile(filepath.Join(dir2, filepath.FromSlash(k)))
		if err != nil || !bytes.Equal(got, v) {
			t.Fatalf("dir -> S3 -> dir: %s: %d bytes, %v", k, len(got), err)
		}
	}
	// Local directory to local directory, and nothing to redo after.
	dir3 := filepath.Join(e.dir, "enc3")
	mustRun(t, e.cmd("encrypt", "-r", dir, dir3))
	out, err = e.cmd("encrypt", "-r", dir, dir3).CombinedOutput()
	if err != nil || !strings.Contains(string(out), fmt.Sprintf("%d skipped", len(objects))) {
		t.Errorf("directory rerun: %v: %s", err, out)
	}
}

// TestS3MissingObjectIsAnIOError: a missing object or bucket is exit code 5
// with one line that says so, and no output appears.
func TestS3MissingObjectIsAnIOError(t *testing.T) {
	e := newS3Env(t)
	for _, in := range []string{e.url("missing.ep"), "s3://ep-no-such-bucket-" + e.bucket[len(e.bucket)-12:] + "/k"} {
		out := filepath.Join(e.dir, "out")
		cmd := e.cmd("decrypt", in, out)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		code := exitCodeOf(t, cmd.Run())
		if code != 5 || strings.Count(stderr.String(), "\n") != 1 || !strings.Contains(stderr.String(), "no such object") {
			t.Errorf("decrypt %s: exit %d, stderr %q; want 5 and one line", in, code, stderr.String())
		}
		if _, err := os.Stat(out); err == nil {
			t.Errorf("decrypt %s left an output", in)
		}
	}
}

// TestS3RecordsUseS3Too: the records commands take S3 inputs and outputs
// through the same openInput and openOutput.
func TestS3RecordsUseS3Too(t *testing.T) {
	e := newS3Env(t)
	lines := []byte("{\"a\":1}\n{\"b\":[2,3]}\n")
	enc := e.cmd("records", "encrypt", "-", e.url("r.drr"))
	enc.Stdin = bytes.NewReader(lines)
	mustRun(t, enc)
	got, err := e.cmd("records", "decrypt", e.url("r.drr")).Output()
	if err != nil || !bytes.Equal(got, lines) {
		t.Fatalf("records through S3: %q, %v", got, err)
	}
}

// TestS3FailingPartsAbortTheUpload sends an encryption through a proxy
// that cuts every connection carrying a part: after the retries the run
// fails with exit 5, and neither an object nor an upload is left.
func TestS3FailingPartsAbortTheUpload(t *testing.T) {
	e := newS3Env(t)
	u, _ := url.Parse(e.endpoint)
	px := s3test.NewProxy(t, u.Host)
	px.FailRequestsOver(1 << 20)
	src := filepath.Join(e.dir, "src")
	os.WriteFile(src, s3test.Random(8, 11<<20), 0o644)
	cmd := e.cmd("@"+px.URL, "encrypt", "--part-size", "5MiB", src, e.url("f.ep"))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if code := exitCodeOf(t, cmd.Run()); code != 5 || strings.Count(stderr.String(), "\n") != 1 {
		t.Errorf("exit %d, stderr %q: want 5 and one line", code, stderr.String())
	}
	if px.Cuts() == 0 {
		t.Error("no part was cut")
	}
	if s3test.Exists(t, e.client, e.bucket, "f.ep") {
		t.Error("a failed upload left an object")
	}
	if n := len(s3test.Uploads(t, e.client, e.bucket, "")); n != 0 {
		t.Errorf("%d incomplete uploads left", n)
	}
}
