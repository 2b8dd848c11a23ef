package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/baton-sched/baton/api"
	"github.com/baton-sched/baton/client"
	"github.com/baton-sched/baton/internal/localcluster"
	"github.com/baton-sched/baton/internal/s3test"
)

// The job commit of saveAsTextFile (_SUCCESS, the removal of _temporary)
// and the check that an output is new run on executors. These tests kill
// the leader while it waits for an executor's job commit (every part is in
// place, _SUCCESS is not, the job's last ends are not logged): the new
// leader has the commit done again, and the output holds each part once,
// _SUCCESS, and nothing temporary.

// commitDelay holds every job commit on the executors long enough for a
// test to see the window and kill the leader in it.
const commitDelay = "5s"

// commitCluster is slowCluster with executors' job commits delayed and
// the given data roots: roots for every process, execRoots for executors
// only.
func commitCluster(t *testing.T, roots, execRoots []string) (*localcluster.Cluster, *client.Client) {
	t.Helper()
	execFlags := []string{"-chaos-job-commit-delay", commitDelay}
	for _, r := range execRoots {
		execFlags = append(execFlags, "-data-root", r)
	}
	c, err := localcluster.Start(context.Background(), localcluster.Options{Bin: binDir, Dir: debugDir(t), DataRoots: roots,
		SchedFlags: []string{"-heartbeat-interval", "200ms", "-executor-timeout", "10s"}, ExecFlags: execFlags})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	cl, err := c.Client()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	return c, cl
}

// killLeaderMidCommit waits until every part is in place and _SUCCESS is
// not (the executors' job commit is under way, delayed), checks the job
// has not succeeded, and SIGKILLs the leader.
func killLeaderMidCommit(t *testing.T, ctx context.Context, c *localcluster.Cluster, cl *client.Client, id uint64, parts func() (int, bool)) {
	t.Helper()
	waitUntil(t, 3*time.Minute, "every part committed", func() bool {
		n, _ := parts()
		return n == 4
	})
	if _, success := parts(); success {
		t.Fatal("_SUCCESS was written before the test could kill the leader in the job commit")
	}
	leader, term, err := c.Leader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	j, err := cl.Job(ctx, id, true)
	if err != nil {
		t.Fatal(err)
	}
	if j.State == api.JobState_JOB_STATE_SUCCEEDED {
		t.Fatal("the job succeeded before its _SUCCESS was written")
	}
	if err := c.Kill(leader); err != nil {
		t.Fatal(err)
	}
	if _, err := c.WaitLeader(ctx, leader, term); err != nil {
		t.Fatal(err)
	}
}

// TestJobCommitOnExecutorsLocal: the output directory is under a data root
// only the executors have; the schedd processes are confined away from it,
// so the check, the commit and the cleanup can only have run on executors.
func TestJobCommitOnExecutorsLocal(t *testing.T) {
	in := t.TempDir()
	want := genText(t, in, 8, 1500, 31)
	outRoot := t.TempDir()
	out := filepath.Join(outRoot, "out")
	c, cl := commitCluster(t, []string{in}, []string{outRoot})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	p := savePlan(filepath.Join(in, "*.txt"), out, 0)
	id, err := cl.Submit(ctx, p, client.SubmitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	killLeaderMidCommit(t, ctx, c, cl, id, func() (int, bool) {
		n := 0
		for i := 0; i < 4; i++ {
			if _, err := os.Stat(filepath.Join(out, fmt.Sprintf("part-%05d", i))); err == nil {
				n++
			}
		}
		_, err := os.Stat(filepath.Join(out, "_SUCCESS"))
		return n, err == nil
	})
	j, err := cl.Wait(ctx, id, nil)
	if err != nil {
		t.Fatal(err)
	}
	if j.State != api.JobState_JOB_STATE_SUCCEEDED {
		t.Fatalf("job %s: %s", j.State, j.Message)
	}
	checkSaved(t, out, 4, want)

	// The check runs on an executor too: the output now exists.
	_, err = cl.Submit(ctx, p, client.SubmitOptions{})
	if status.Code(err) != codes.AlreadyExists || !strings.Contains(err.Error(), out) {
		t.Errorf("saving into a non-empty directory: %v, want AlreadyExists naming %s", err, out)
	}
	// Outside the executors' data roots: refused by them.
	p.Action.Path = filepath.Join(c.Dir(), "elsewhere")
	_, err = cl.Submit(ctx, p, client.SubmitOptions{})
	if status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), "outside the data roots") {
		t.Errorf("saving outside the data roots: %v, want PermissionDenied", err)
	}
}

// TestWordCountS3LeaderKilledMidCommit: a word count from s3:// input
// (split by byte range, ranged GETs) to s3:// output through a 3-node
// quorum against a real S3 server (versitygw, its own process), the
// leader SIGKILLed during the job commit.
func TestWordCountS3LeaderKilledMidCommit(t *testing.T) {
	srv := s3test.Start(t)
	for _, kv := range srv.Env() {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v) // the cluster's processes inherit them
	}
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(t.TempDir(), "none"))
	s3 := srv.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	in := t.TempDir()
	want := genText(t, in, 8, 1500, 32)
	files, _ := filepath.Glob(filepath.Join(in, "*.txt"))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s3.PutObject(ctx, srv.Bucket, "in/"+filepath.Base(f), bytes.NewReader(b), int64(len(b)), minio.PutObjectOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	c, cl := commitCluster(t, nil, nil)
	out := "s3://" + srv.Bucket + "/out"
	p := savePlan("s3://"+srv.Bucket+"/in/*.txt", out, 0)
	id, err := cl.Submit(ctx, p, client.SubmitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	keys := func() []string {
		var ks []string
		for o := range s3.ListObjects(ctx, srv.Bucket, minio.ListObjectsOptions{Prefix: "out/", Recursive: true}) {
			if o.Err == nil {
				ks = append(ks, o.Key)
			}
		}
		slices.Sort(ks)
		return ks
	}
	killLeaderMidCommit(t, ctx, c, cl, id, func() (int, bool) {
		n, success := 0, false
		for _, k := range keys() {
			switch {
			case strings.HasPrefix(k, "out/part-"):
				n++
			case k == "out/_SUCCESS":
				success = true
			}
		}
		return n, success
	})
	j, err := cl.Wait(ctx, id, nil)
	if err != nil {
		t.Fatal(err)
	}
	if j.State != api.JobState_JOB_STATE_SUCCEEDED {
		t.Fatalf("job %s: %s", j.State, j.Message)
	}
	wantKeys := []string{"out/_SUCCESS", "out/part-00000", "out/part-00001", "out/part-00002", "out/part-00003"}
	if got := keys(); !slices.Equal(got, wantKeys) {
		t.Fatalf("output objects %v, want %v", got, wantKeys)
	}
	for u := range s3.ListIncompleteUploads(ctx, srv.Bucket, "out/", true) {
		if u.Err == nil {
			t.Errorf("an incomplete multipart upload is left: %s", u.Key)
		}
	}
	got := map[string]int{}
	for _, k := range wantKeys[1:] {
		obj, err := s3.GetObject(ctx, srv.Bucket, k, minio.GetObjectOptions{})
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(obj)
		obj.Close()
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
			if line == "" {
				continue
			}
			w, v, ok := strings.Cut(line, "\t")
			n, err := strconv.Atoi(v)
			if !ok || err != nil {
				t.Fatalf("%s: line %q is not word<TAB>count", k, line)
			}
			if _, dup := got[w]; dup {
				t.Fatalf("%s: %q written twice", k, w)
			}
			got[w] = n
		}
	}
	if len(got) != len(want) {
		t.Fatalf("%d words, want %d", len(got), len(want))
	}
	for w, n := range want {
		if got[w] != n {
			t.Fatalf("%q: %d, want %d", w, got[w], n)
		}
	}

	// Bad outputs are refused before a job is logged, by an executor.
	_, err = cl.Submit(ctx, p, client.SubmitOptions{})
	if status.Code(err) != codes.AlreadyExists || !strings.Contains(err.Error(), out) {
		t.Errorf("saving into a non-empty prefix: %v, want AlreadyExists naming %s", err, out)
	}
	p.Action.Path = "s3://no-such-bucket/out"
	_, err = cl.Submit(ctx, p, client.SubmitOptions{})
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), `bucket "no-such-bucket" does not exist`) {
		t.Errorf("saving into a missing bucket: %v, want InvalidArgument naming the bucket", err)
	}
}
