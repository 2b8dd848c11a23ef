package ops

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/minio/minio-go/v7"

	"github.com/baton-sched/baton/internal/s3test"
)

// s3Env starts a real S3 server (versitygw, its own process) and points
// this process's s3:// paths at it.
func s3Env(t *testing.T) (*s3test.Server, *minio.Client) {
	t.Helper()
	srv := s3test.Start(t)
	for _, kv := range srv.Env() {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(t.TempDir(), "none"))
	return srv, srv.Client(t)
}

func s3Put(t *testing.T, cl *minio.Client, bucket, key string, data []byte) {
	t.Helper()
	if _, err := cl.PutObject(context.Background(), bucket, key, bytes.NewReader(data), int64(len(data)), minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
}

func s3Keys(t *testing.T, cl *minio.Client, bucket, prefix string) []string {
	t.Helper()
	var ks []string
	for o := range cl.ListObjects(context.Background(), bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true}) {
		if o.Err != nil {
			t.Fatal(o.Err)
		}
		ks = append(ks, o.Key)
	}
	slices.Sort(ks)
	return ks
}

// TestS3TextFileSplitsAndRangedReads: a glob over keys is split by byte
// range; reading every split with ranged GETs gives every line once,
// whatever the split boundaries cut; an object that changed since is
// refused, naming it.
func TestS3TextFileSplitsAndRangedReads(t *testing.T) {
	srv, cl := s3Env(t)
	var want []string
	for f := 0; f < 3; f++ {
		var b strings.Builder
		for l := 0; l < 2000; l++ {
			line := fmt.Sprintf("file%d line %d %s", f, l, strings.Repeat("x", l%37))
			want = append(want, line)
			b.WriteString(line + "\n")
		}
		s3Put(t, cl, srv.Bucket, fmt.Sprintf("in/f%d.txt", f), []byte(b.String()))
	}
	s3Put(t, cl, srv.Bucket, "in/skip.csv", []byte("not matched\n"))
	s3Put(t, cl, srv.Bucket, "in/sub/f9.txt", []byte("not matched either: * does not cross /\n"))
	r := FileResolver{BlockSize: 10_000}
	splits, err := r.TextFileSplits("s3://"+srv.Bucket+"/in/*.txt", 2)
	if err != nil {
		t.Fatal(err)
	}
	if len(splits) < 6 {
		t.Fatalf("%d splits, want the objects cut by the 10000-byte block size", len(splits))
	}
	for _, s := range splits {
		if !strings.HasPrefix(s.Path, "s3://"+srv.Bucket+"/in/f") || s.ETag == "" {
			t.Fatalf("split %+v", s)
		}
	}
	ps := &textParams{Splits: splits}
	var got []string
	for p := range splits {
		if err := readTextSplit(context.Background(), nil, ps, p, func(r Record) error {
			got = append(got, string(r.Value))
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	if !slices.Equal(got, want) {
		t.Fatalf("read %d lines, want %d (in order, once each)", len(got), len(want))
	}

	// The object changes under the job.
	s3Put(t, cl, srv.Bucket, "in/f1.txt", []byte("short now\n"))
	var changed error
	for p, s := range splits {
		if strings.HasSuffix(s.Path, "/f1.txt") {
			changed = readTextSplit(context.Background(), nil, ps, p, func(Record) error { return nil })
			break
		}
	}
	if changed == nil || !strings.Contains(changed.Error(), "in/f1.txt changed since the job was submitted") {
		t.Fatalf("reading a changed object: %v", changed)
	}

	if _, err := r.TextFileSplits("s3://no-such-bucket/in/*.txt", 1); err == nil || !strings.Contains(err.Error(), `bucket "no-such-bucket" does not exist`) {
		t.Fatalf("missing bucket: %v", err)
	}
	if _, err := r.TextFileSplits("s3://"+srv.Bucket+"/nothing/*", 1); err == nil || !strings.Contains(err.Error(), "no input objects match") {
		t.Fatalf("no match: %v", err)
	}
}

// TestS3OutputCommitProtocol: an attempt's object is invisible until its
// commit (a server-side copy), a discarded attempt leaves nothing, the job
// commit removes the temporaries and writes _SUCCESS (again, when asked
// again), and a non-empty prefix or a missing bucket is refused.
func TestS3OutputCommitProtocol(t *testing.T) {
	srv, cl := s3Env(t)
	ctx := context.Background()
	var cf *Confinement
	out, err := cf.OpenOutput(ctx, "s3://"+srv.Bucket+"/out")
	if err != nil {
		t.Fatal(err)
	}
	if err := out.Check(ctx); err != nil {
		t.Fatalf("check of a new prefix: %v", err)
	}
	// Partition 0: two attempts; the first commits, the second is denied.
	win, err := out.Create(ctx, 7, 100, 0)
	if err != nil {
		t.Fatal(err)
	}
	big := bytes.Repeat([]byte("0123456789abcdef\n"), 2<<20) // 34 MiB: a multipart upload
	if _, err := win.Write(big); err != nil {
		t.Fatal(err)
	}
	if err := win.Finish(); err != nil {
		t.Fatal(err)
	}
	lose, err := out.Create(ctx, 7, 101, 0)
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(lose, "loser\n")
	if err := lose.Finish(); err != nil {
		t.Fatal(err)
	}
	if ks := s3Keys(t, cl, srv.Bucket, "out/"); slices.Contains(ks, "out/part-00000") {
		t.Fatalf("a part is visible before its commit: %v", ks)
	}
	if err := win.Commit(); err != nil {
		t.Fatal(err)
	}
	win.Discard()
	lose.Discard()
	// Partition 1: an attempt that fails while writing.
	dead, err := out.Create(ctx, 7, 102, 1)
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(dead, "half")
	dead.Discard()
	// Partition 1 again, committed; and a stray attempt left behind (its
	// executor died): the job commit removes it.
	p1, _ := out.Create(ctx, 7, 103, 1)
	io.WriteString(p1, "one\n")
	if err := p1.Finish(); err != nil {
		t.Fatal(err)
	}
	if err := p1.Commit(); err != nil {
		t.Fatal(err)
	}
	p1.Discard()
	stray, _ := out.Create(ctx, 7, 104, 1)
	io.WriteString(stray, "stray\n")
	stray.Finish()
	if err := out.Check(ctx); !errors.Is(err, ErrOutputExists) || !strings.Contains(err.Error(), "s3://"+srv.Bucket+"/out") {
		t.Fatalf("check of a prefix with objects: %v", err)
	}
	for range 2 { // a new leader may ask again
		if err := out.CommitJob(ctx, 7); err != nil {
			t.Fatal(err)
		}
	}
	if got, want := s3Keys(t, cl, srv.Bucket, "out/"), []string{"out/_SUCCESS", "out/part-00000", "out/part-00001"}; !slices.Equal(got, want) {
		t.Fatalf("objects %v, want %v", got, want)
	}
	obj, err := cl.GetObject(ctx, srv.Bucket, "out/part-00000", minio.GetObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(obj)
	obj.Close()
	if !bytes.Equal(b, big) {
		t.Fatalf("part-00000 holds %d bytes, want the winner's %d", len(b), len(big))
	}
	for u := range cl.ListIncompleteUploads(ctx, srv.Bucket, "out/", true) {
		if u.Err == nil {
			t.Errorf("incomplete upload left: %s", u.Key)
		}
	}

	missing, err := cf.OpenOutput(ctx, "s3://no-such-bucket/out")
	if err != nil {
		t.Fatal(err)
	}
	if err := missing.Check(ctx); !errors.Is(err, ErrOutputInvalid) || !strings.Contains(err.Error(), `bucket "no-such-bucket" does not exist`) {
		t.Fatalf("check of a missing bucket: %v", err)
	}
}

// TestS3WithoutCredentials: no credentials anywhere is a clear error,
// before any request.
func TestS3WithoutCredentials(t *testing.T) {
	for _, k := range []string{"AWS_ACCESS_KEY_ID", "AWS_ACCESS_KEY", "AWS_SECRET_ACCESS_KEY", "AWS_SECRET_KEY", "AWS_SESSION_TOKEN"} {
		t.Setenv(k, "")
	}
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(t.TempDir(), "none"))
	cf := &Confinement{S3EndpointURL: "http://127.0.0.1:1"}
	if _, err := cf.OpenOutput(context.Background(), "s3://b/out"); err == nil || !strings.Contains(err.Error(), "no credentials") {
		t.Fatalf("open without credentials: %v", err)
	}
	if _, err := (FileResolver{Confine: cf}).TextFileSplits("s3://b/in/*", 1); err == nil || !strings.Contains(err.Error(), "no credentials") {
		t.Fatalf("list without credentials: %v", err)
	}
	bad := &Confinement{S3EndpointURL: "127.0.0.1:9000"}
	if _, err := bad.OpenOutput(context.Background(), "s3://b/out"); err == nil || !strings.Contains(err.Error(), "not an http(s)://host[:port] URL") {
		t.Fatalf("bad endpoint: %v", err)
	}
	if _, err := cf.OpenOutput(context.Background(), "s3:///out"); !errors.Is(err, ErrOutputInvalid) {
		t.Fatalf("no bucket: %v", err)
	}
}
