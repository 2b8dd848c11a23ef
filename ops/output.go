package ops

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"syscall"
)

// This file is saveAsTextFile's output on the executor's side: a local
// directory or an s3:// prefix, behind one interface so that the commit
// protocol is the same for both. An attempt writes its partition to a
// temporary name of its own (<out>/_temporary/<job>/attempt-<task>/part-N),
// asks the leader whether it may commit, and makes it the partition's part
// (<out>/part-NNNNN) only if authorised: a rename on a file system, a
// server-side copy then a delete of the temporary object on S3. The job
// commit (Spark's commitJob: the job's temporary names go, _SUCCESS last)
// and the check that the output is new run on an executor too, asked by
// the leader (api.OutputOp): the leader never touches the data.

// Output errors the leader passes to the client as they are (asking
// another executor would not help): the output holds something already,
// or it is not a usable place for one.
var (
	ErrOutputExists  = errors.New("already exists and is not empty")
	ErrOutputInvalid = errors.New("is not a usable output")
)

// Output is a saveAsTextFile destination opened on an executor.
type Output interface {
	// Check refuses an output that already holds anything (as Spark
	// refuses an existing output directory: outputs are never mixed), or
	// that cannot be one (a file, a missing bucket).
	Check(ctx context.Context) error
	// Create starts attempt task's file of partition part of job.
	Create(ctx context.Context, job, task uint64, part int) (Attempt, error)
	// CommitJob removes the job's temporary names and writes _SUCCESS.
	// Idempotent: a new leader may ask again.
	CommitJob(ctx context.Context, job uint64) error
	// AbortJob removes the job's temporary names. Idempotent.
	AbortJob(ctx context.Context, job uint64) error
	// Close releases the output.
	Close() error
}

// Attempt is one task attempt's file of a partition.
type Attempt interface {
	io.Writer
	// Finish makes what was written durable under the attempt's temporary
	// name (before it asks to commit). On error the attempt is discarded.
	Finish() error
	// Commit makes the temporary file the partition's part file.
	Commit() error
	// Discard removes the attempt's temporary file (after a denial, a
	// failure, or a commit: then only what is left of the temporary).
	Discard()
}

// PartName is the final name of partition part's file.
func PartName(part int) string { return fmt.Sprintf("part-%05d", part) }

// tempDir is the job's temporary directory under an output.
func tempDir(job uint64) string { return path.Join("_temporary", fmt.Sprint(job)) }

// attemptName is an attempt's temporary file name under an output.
func attemptName(job, task uint64, part int) string {
	return path.Join(tempDir(job), fmt.Sprintf("attempt-%d", task), PartName(part))
}

// OpenOutput opens a saveAsTextFile output: s3://bucket/prefix, or an
// absolute directory path confined to the data roots.
func (c *Confinement) OpenOutput(ctx context.Context, where string) (Output, error) {
	if IsS3(where) {
		return c.openS3Output(ctx, where)
	}
	if !filepath.IsAbs(where) {
		return nil, fmt.Errorf("saveAsTextFile: path %q must be absolute or s3://bucket/prefix: %w", where, ErrOutputInvalid)
	}
	d, err := c.OpenDir("saveAsTextFile", where)
	if err != nil {
		return nil, err
	}
	return &dirOutput{d: d}, nil
}

// dirOutput is an output directory on the executor's file system.
type dirOutput struct{ d *Dir }

func (o *dirOutput) Check(context.Context) error {
	entries, err := o.d.ReadDir(".")
	switch {
	case errors.Is(err, os.ErrNotExist):
		return nil
	case errors.Is(err, syscall.ENOTDIR):
		// A file where the directory would be.
		return fmt.Errorf("saveAsTextFile: output %s exists and is not a directory: %w", o.d.Path(), ErrOutputInvalid)
	case err != nil:
		return fmt.Errorf("saveAsTextFile: output %s: %w", o.d.Path(), err)
	case len(entries) > 0:
		return fmt.Errorf("saveAsTextFile: output directory %s %w", o.d.Path(), ErrOutputExists)
	}
	return nil
}

func (o *dirOutput) Create(_ context.Context, job, task uint64, part int) (Attempt, error) {
	name := attemptName(job, task, part)
	f, err := o.d.Create(name)
	if err != nil {
		return nil, fmt.Errorf("ops: saveAsTextFile: %w", err)
	}
	return &dirAttempt{o: o, f: f, name: name, part: part, job: job}, nil
}

func (o *dirOutput) CommitJob(ctx context.Context, job uint64) error {
	if err := o.AbortJob(ctx, job); err != nil {
		return err
	}
	if err := o.d.WriteFile("_SUCCESS", nil); err != nil {
		return fmt.Errorf("ops: saveAsTextFile: writing _SUCCESS in %s: %w", o.d.Path(), err)
	}
	o.d.Sync(".")
	return nil
}

func (o *dirOutput) AbortJob(_ context.Context, job uint64) error {
	err := o.d.RemoveAll(tempDir(job))
	// Another job may write there too: only once empty.
	o.d.Remove("_temporary")
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("ops: saveAsTextFile: removing %s/%s: %w", o.d.Path(), tempDir(job), err)
	}
	return nil
}

func (o *dirOutput) Close() error { return o.d.Close() }

type dirAttempt struct {
	o    *dirOutput
	f    *os.File
	name string
	part int
	job  uint64
}

func (a *dirAttempt) Write(b []byte) (int, error) { return a.f.Write(b) }

func (a *dirAttempt) Finish() error {
	err := a.f.Sync()
	if cerr := a.f.Close(); err == nil {
		err = cerr
	}
	return err
}

func (a *dirAttempt) Commit() error {
	if err := a.o.d.Rename(a.name, PartName(a.part)); err != nil {
		return fmt.Errorf("ops: saveAsTextFile: commit %s: %w", PartName(a.part), err)
	}
	a.o.d.Sync(".")
	return nil
}

func (a *dirAttempt) Discard() {
	a.f.Close()
	a.o.d.RemoveAll(path.Dir(a.name))
	a.o.d.Remove(tempDir(a.job))
	a.o.d.Remove("_temporary")
}
