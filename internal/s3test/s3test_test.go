package s3test_test

import (
	"bytes"
	"context"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/baton-sched/baton/internal/s3test"
)

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func put(t *testing.T, cl *minio.Client, bucket, key string, data []byte) minio.UploadInfo {
	t.Helper()
	info, err := cl.PutObject(ctxT(t), bucket, key, bytes.NewReader(data), int64(len(data)), minio.PutObjectOptions{})
	if err != nil {
		t.Fatalf("put %s: %v", key, err)
	}
	return info
}

func get(t *testing.T, cl *minio.Client, bucket, key string, opts minio.GetObjectOptions) []byte {
	t.Helper()
	obj, err := cl.GetObject(ctxT(t), bucket, key, opts)
	if err != nil {
		t.Fatalf("get %s: %v", key, err)
	}
	defer obj.Close()
	b, err := io.ReadAll(obj)
	if err != nil {
		t.Fatalf("get %s: %v", key, err)
	}
	return b
}

// absent fails unless key is missing: StatObject says NoSuchKey.
func absent(t *testing.T, cl *minio.Client, bucket, key string) {
	t.Helper()
	_, err := cl.StatObject(ctxT(t), bucket, key, minio.StatObjectOptions{})
	if err == nil {
		t.Fatalf("%s exists, want it absent", key)
	}
	if code := minio.ToErrorResponse(err).Code; code != minio.NoSuchKey {
		t.Fatalf("stat %s: %v (code %q), want NoSuchKey", key, err, code)
	}
}

// keys lists every object under prefix (recursively) in order.
func keys(t *testing.T, cl *minio.Client, bucket, prefix string) []string {
	t.Helper()
	var out []string
	for o := range cl.ListObjects(ctxT(t), bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true}) {
		if o.Err != nil {
			t.Fatalf("list %q: %v", prefix, o.Err)
		}
		out = append(out, o.Key)
	}
	return out
}

func uploads(t *testing.T, core minio.Core, bucket, prefix string) []string {
	t.Helper()
	res, err := core.ListMultipartUploads(ctxT(t), bucket, prefix, "", "", "", 1000)
	if err != nil {
		t.Fatalf("list uploads %q: %v", prefix, err)
	}
	var out []string
	for _, u := range res.Uploads {
		out = append(out, u.Key)
	}
	return out
}

// TestServerServesTheCommitProtocol drives, through minio-go, every S3
// operation issue 15's object storage needs: put, ranged get, multipart
// uploads completed and aborted, copy from a temporary key then delete it,
// conditional create, and listing by prefix and delimiter.
func TestServerServesTheCommitProtocol(t *testing.T) {
	srv := s3test.Start(t)
	cl := srv.Client(t)
	core := minio.Core{Client: cl}
	b := srv.Bucket

	if host, _, err := net.SplitHostPort(srv.Endpoint); err != nil || host != "127.0.0.1" {
		t.Fatalf("endpoint %q is not on 127.0.0.1", srv.Endpoint)
	}

	t.Run("put_and_ranged_get", func(t *testing.T) {
		data := []byte("0123456789abcdefghij")
		put(t, cl, b, "in/a.txt", data)
		if got := get(t, cl, b, "in/a.txt", minio.GetObjectOptions{}); !bytes.Equal(got, data) {
			t.Fatalf("whole get = %q, want %q", got, data)
		}
		var opts minio.GetObjectOptions
		if err := opts.SetRange(5, 9); err != nil { // bytes=5-9
			t.Fatal(err)
		}
		if got := get(t, cl, b, "in/a.txt", opts); string(got) != "56789" {
			t.Fatalf("ranged get bytes=5-9 = %q, want %q", got, "56789")
		}
		// A range past the end is cut at the end, as S3 does.
		opts = minio.GetObjectOptions{}
		if err := opts.SetRange(15, 99); err != nil {
			t.Fatal(err)
		}
		if got := get(t, cl, b, "in/a.txt", opts); string(got) != "fghij" {
			t.Fatalf("ranged get bytes=15-99 = %q, want %q", got, "fghij")
		}
		st, err := cl.StatObject(ctxT(t), b, "in/a.txt", minio.StatObjectOptions{})
		if err != nil || st.Size != int64(len(data)) {
			t.Fatalf("stat = %+v, %v; want size %d", st, err, len(data))
		}
	})

	t.Run("multipart_completed", func(t *testing.T) {
		ctx := ctxT(t)
		key := "out/mp-completed"
		part1 := bytes.Repeat([]byte("a"), 5<<20) // S3's least part size but the last
		part2 := []byte("the last part may be small")
		id, err := core.NewMultipartUpload(ctx, b, key, minio.PutObjectOptions{})
		if err != nil {
			t.Fatal(err)
		}
		p1, err := core.PutObjectPart(ctx, b, key, id, 1, bytes.NewReader(part1), int64(len(part1)), minio.PutObjectPartOptions{})
		if err != nil {
			t.Fatal(err)
		}
		p2, err := core.PutObjectPart(ctx, b, key, id, 2, bytes.NewReader(part2), int64(len(part2)), minio.PutObjectPartOptions{})
		if err != nil {
			t.Fatal(err)
		}
		// Until it is completed the upload is no object: not to stat, not
		// in a listing; it is in the listing of uploads.
		absent(t, cl, b, key)
		if k := keys(t, cl, b, "out/"); len(k) != 0 {
			t.Fatalf("listing shows %v while the upload is in progress", k)
		}
		if u := uploads(t, core, b, "out/"); !slices.Equal(u, []string{key}) {
			t.Fatalf("uploads in progress = %v, want [%s]", u, key)
		}
		parts, err := core.ListObjectParts(ctx, b, key, id, 0, 1000)
		if err != nil || len(parts.ObjectParts) != 2 {
			t.Fatalf("list parts = %+v, %v; want 2 parts", parts.ObjectParts, err)
		}
		done, err := core.CompleteMultipartUpload(ctx, b, key, id, []minio.CompletePart{
			{PartNumber: 1, ETag: p1.ETag}, {PartNumber: 2, ETag: p2.ETag},
		}, minio.PutObjectOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasSuffix(strings.Trim(done.ETag, `"`), "-2") {
			t.Logf("completed ETag %q has no -2 suffix", done.ETag)
		}
		want := append(slices.Clone(part1), part2...)
		if got := get(t, cl, b, key, minio.GetObjectOptions{}); !bytes.Equal(got, want) {
			t.Fatalf("completed object: %d bytes, want %d", len(got), len(want))
		}
		if u := uploads(t, core, b, "out/"); len(u) != 0 {
			t.Fatalf("uploads after completion = %v, want none", u)
		}
		// Completing again (a commit retried after a failover) is
		// harmless: versitygw, like S3, answers it with success (others
		// say NoSuchUpload), and the object stays as it was.
		_, err = core.CompleteMultipartUpload(ctx, b, key, id, []minio.CompletePart{
			{PartNumber: 1, ETag: p1.ETag}, {PartNumber: 2, ETag: p2.ETag},
		}, minio.PutObjectOptions{})
		if code := minio.ToErrorResponse(err).Code; err != nil && code != minio.NoSuchUpload {
			t.Fatalf("second completion: %v (code %q), want success or NoSuchUpload", err, code)
		}
		t.Logf("a second completion of a completed upload answers %v", err)
		if got := get(t, cl, b, key, minio.GetObjectOptions{}); !bytes.Equal(got, want) {
			t.Fatalf("object after the second completion: %d bytes, want %d", len(got), len(want))
		}
	})

	t.Run("multipart_aborted", func(t *testing.T) {
		ctx := ctxT(t)
		key := "aborted/mp"
		id, err := core.NewMultipartUpload(ctx, b, key, minio.PutObjectOptions{})
		if err != nil {
			t.Fatal(err)
		}
		data := []byte("never to be seen")
		part, err := core.PutObjectPart(ctx, b, key, id, 1, bytes.NewReader(data), int64(len(data)), minio.PutObjectPartOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if err := core.AbortMultipartUpload(ctx, b, key, id); err != nil {
			t.Fatal(err)
		}
		absent(t, cl, b, key)
		if k := keys(t, cl, b, "aborted/"); len(k) != 0 {
			t.Fatalf("listing after abort = %v, want none", k)
		}
		if u := uploads(t, core, b, "aborted/"); len(u) != 0 {
			t.Fatalf("uploads after abort = %v, want none", u)
		}
		_, err = core.ListObjectParts(ctx, b, key, id, 0, 1000)
		if code := minio.ToErrorResponse(err).Code; code != minio.NoSuchUpload {
			t.Fatalf("parts of an aborted upload: %v (code %q), want NoSuchUpload", err, code)
		}
		// Completing an aborted upload (a commit authorised after the
		// attempt was given up) fails and makes no object.
		_, err = core.CompleteMultipartUpload(ctx, b, key, id, []minio.CompletePart{{PartNumber: 1, ETag: part.ETag}}, minio.PutObjectOptions{})
		if err == nil {
			t.Fatal("completing an aborted upload succeeded")
		}
		t.Logf("completing an aborted upload answers %v (code %q)", err, minio.ToErrorResponse(err).Code)
		absent(t, cl, b, key)
	})

	t.Run("copy_from_temporary_then_delete", func(t *testing.T) {
		ctx := ctxT(t)
		tmp := "_temporary/attempt-7/part-00000"
		final := "copied/part-00000"
		data := bytes.Repeat([]byte("word count\n"), 1000)
		put(t, cl, b, tmp, data)
		absent(t, cl, b, final)
		if _, err := cl.CopyObject(ctx,
			minio.CopyDestOptions{Bucket: b, Object: final},
			minio.CopySrcOptions{Bucket: b, Object: tmp}); err != nil {
			t.Fatal(err)
		}
		if err := cl.RemoveObject(ctx, b, tmp, minio.RemoveObjectOptions{}); err != nil {
			t.Fatal(err)
		}
		if got := get(t, cl, b, final, minio.GetObjectOptions{}); !bytes.Equal(got, data) {
			t.Fatalf("copy: %d bytes, want %d", len(got), len(data))
		}
		absent(t, cl, b, tmp)
		if k := keys(t, cl, b, "_temporary/"); len(k) != 0 {
			t.Fatalf("temporary keys left: %v", k)
		}
		// Deleting a key that is gone succeeds, as S3 does: a cleanup may
		// be repeated.
		if err := cl.RemoveObject(ctx, b, tmp, minio.RemoveObjectOptions{}); err != nil {
			t.Fatalf("deleting a missing key: %v", err)
		}
	})

	t.Run("conditional_create", func(t *testing.T) {
		// If-None-Match: * creates a key only if it is absent: a _SUCCESS
		// marker, or a part, written once however often a commit is retried.
		ctx := ctxT(t)
		opts := minio.PutObjectOptions{}
		opts.SetMatchETagExcept("*")
		if _, err := cl.PutObject(ctx, b, "cond/_SUCCESS", strings.NewReader("1"), 1, opts); err != nil {
			t.Fatalf("first conditional create: %v", err)
		}
		_, err := cl.PutObject(ctx, b, "cond/_SUCCESS", strings.NewReader("2"), 1, opts)
		if code := minio.ToErrorResponse(err).Code; code != "PreconditionFailed" {
			t.Fatalf("second conditional create: %v (code %q), want PreconditionFailed", err, code)
		}
		if got := get(t, cl, b, "cond/_SUCCESS", minio.GetObjectOptions{}); string(got) != "1" {
			t.Fatalf("_SUCCESS = %q after a refused overwrite, want %q", got, "1")
		}
	})

	t.Run("list_by_prefix", func(t *testing.T) {
		ctx := ctxT(t)
		for _, k := range []string{"list/a/1", "list/a/2", "list/a/3", "list/b/1", "list/c", "listx"} {
			put(t, cl, b, k, []byte(k))
		}
		if got, want := keys(t, cl, b, "list/a/"), []string{"list/a/1", "list/a/2", "list/a/3"}; !slices.Equal(got, want) {
			t.Fatalf("list list/a/ = %v, want %v", got, want)
		}
		// Pages of one key each, so the listing must follow continuation.
		var paged []string
		for o := range cl.ListObjects(ctx, b, minio.ListObjectsOptions{Prefix: "list/", Recursive: true, MaxKeys: 1}) {
			if o.Err != nil {
				t.Fatal(o.Err)
			}
			paged = append(paged, o.Key)
		}
		if want := []string{"list/a/1", "list/a/2", "list/a/3", "list/b/1", "list/c"}; !slices.Equal(paged, want) {
			t.Fatalf("paged list list/ = %v, want %v", paged, want)
		}
		// With the delimiter: common prefixes and the objects at this level.
		var level []string
		for o := range cl.ListObjects(ctx, b, minio.ListObjectsOptions{Prefix: "list/"}) {
			if o.Err != nil {
				t.Fatal(o.Err)
			}
			level = append(level, o.Key)
		}
		slices.Sort(level) // minio-go yields a page's objects before its prefixes
		if want := []string{"list/a/", "list/b/", "list/c"}; !slices.Equal(level, want) {
			t.Fatalf("delimited list list/ = %v, want %v", level, want)
		}
	})

	// No upload in progress, nor the server's own bookkeeping, shows in a
	// listing of the whole bucket: exactly the objects the subtests made.
	if t.Failed() {
		return
	}
	want := []string{
		"cond/_SUCCESS", "copied/part-00000", "in/a.txt",
		"list/a/1", "list/a/2", "list/a/3", "list/b/1", "list/c", "listx",
		"out/mp-completed",
	}
	if got := keys(t, cl, b, ""); !slices.Equal(got, want) {
		t.Fatalf("the bucket holds %v, want %v", got, want)
	}
	if u := uploads(t, core, b, ""); len(u) != 0 {
		t.Fatalf("uploads left: %v", u)
	}
}

// TestServersAreIndependent starts two servers at once: each has its own
// port and data directory, and a second bucket can be made.
func TestServersAreIndependent(t *testing.T) {
	a, b := s3test.Start(t), s3test.Start(t)
	if a.Endpoint == b.Endpoint || a.DataDir == b.DataDir {
		t.Fatalf("two servers share %s / %s", a.Endpoint, a.DataDir)
	}
	b.CreateBucket(t, "second")
	cb := b.Client(t)
	put(t, cb, "second", "k", []byte("v"))
	if ok, err := a.Client(t).BucketExists(ctxT(t), "second"); err != nil || ok {
		t.Fatalf("bucket made on b is on a: %v, %v", ok, err)
	}
	// The posix backend keeps an object as a file under DataDir/bucket.
	if got, err := os.ReadFile(filepath.Join(b.DataDir, "second", "k")); err != nil || string(got) != "v" {
		t.Fatalf("object file: %q, %v", got, err)
	}
	env := strings.Join(b.Env(), " ")
	for _, w := range []string{"AWS_ACCESS_KEY_ID=" + b.AccessKey, "AWS_SECRET_ACCESS_KEY=" + b.SecretKey, "AWS_REGION=" + b.Region, "AWS_ENDPOINT_URL=" + b.URL()} {
		if !strings.Contains(env, w) {
			t.Fatalf("Env() = %v lacks %s", b.Env(), w)
		}
	}
}

// TestStopEndsTheProcess: after Stop the port no longer answers, and a
// second Stop (the cleanup's) is harmless.
func TestStopEndsTheProcess(t *testing.T) {
	srv := s3test.Start(t)
	srv.Stop()
	srv.Stop()
	c, err := net.DialTimeout("tcp", srv.Endpoint, time.Second)
	if err == nil {
		c.Close()
		t.Fatalf("%s still accepts connections after Stop", srv.Endpoint)
	}
}

// TestPosixBackendQuirks pins where versitygw's posix backend, which maps
// a key to a file path, parts from S3, so that code tested against it
// neither relies on these nor is surprised by them: a key cannot be both an
// object and a prefix of another ("x" and "x/y"), and keys are cleaned as
// paths ("a//b" and "./a/b" are "a/b"). Baton's output layout (parts and
// _SUCCESS under a prefix, temporaries under another) meets neither.
func TestPosixBackendQuirks(t *testing.T) {
	srv := s3test.Start(t)
	cl := srv.Client(t)
	b := srv.Bucket
	putErr := func(k string) string {
		_, err := cl.PutObject(ctxT(t), b, k, strings.NewReader("v"), 1, minio.PutObjectOptions{})
		return minio.ToErrorResponse(err).Code
	}
	if code := putErr("x"); code != "" {
		t.Fatalf("put x: %s", code)
	}
	if code := putErr("x/y"); code != "ObjectParentIsFile" {
		t.Fatalf("put x/y under object x: code %q, want ObjectParentIsFile (S3 would take it)", code)
	}
	if code := putErr("d/e"); code != "" {
		t.Fatalf("put d/e: %s", code)
	}
	if code := putErr("d"); code == "" {
		t.Fatal("put d over prefix d/ succeeded; the posix backend used to refuse it")
	}
	absent(t, cl, b, "d") // a prefix is no object
	for _, alias := range []string{"d//e", "./d/e"} {
		if _, err := cl.StatObject(ctxT(t), b, alias, minio.StatObjectOptions{}); err != nil {
			t.Fatalf("stat %q: %v; want it to alias d/e", alias, err)
		}
	}
	// Deleting the last key under a prefix removes the directory, so the
	// prefix's name is free again.
	if err := cl.RemoveObject(ctxT(t), b, "d/e", minio.RemoveObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	if code := putErr("d"); code != "" {
		t.Fatalf("put d after d/e was deleted: %s", code)
	}
	if got, want := keys(t, cl, b, ""), []string{"d", "x"}; !slices.Equal(got, want) {
		t.Fatalf("keys = %v, want %v", got, want)
	}
}
