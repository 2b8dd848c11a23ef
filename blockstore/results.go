package blockstore

import (
	"context"
	"fmt"
	"time"
)

// ResultRef is where one partition of a job's result is: in the
// scheduler's replicated state (a direct result, in Data) or in an
// executor's block store (an indirect one, at Addr under Job and Task).
type ResultRef struct {
	Partition int
	Job, Task uint64
	Indirect  bool
	// Data is a direct result; the reader does not keep it.
	Data []byte
	// Addr is the block service of the executor holding an indirect
	// result.
	Addr string
}

// ResultSource says where a job's results are, as the scheduler's state
// knows it. ReadResults depends on nothing else of the scheduler.
type ResultSource interface {
	// JobResults returns the job's results in partition order once the
	// job has succeeded. While it runs it returns no refs and a channel
	// that is closed when the job may have changed (the reader waits on
	// it and asks again); when the results will never be there (the job
	// failed, was cancelled or released, or does not exist), an error.
	JobResults(job uint64) (refs []ResultRef, changed <-chan struct{}, err error)
	// ResultLost reports an indirect result that could not be read (its
	// executor is gone, or its block is lost or corrupt): the partition
	// runs again, and JobResults says the job runs until it has.
	ResultLost(ctx context.Context, ref ResultRef, cause error) error
}

// lostRetry is the wait before reading again after a lost result could
// not be reported (no leader, say).
const lostRetry = 100 * time.Millisecond

// ReadResults calls fn with each partition's result of job, in partition
// order, once the job has succeeded: it waits while the job runs. Direct
// results come from src; indirect ones from the executors' block
// services. An indirect result that cannot be read is reported lost
// (src.ResultLost) and read again once its partition has run again; the
// partitions before it are not given to fn twice. It returns fn's first
// error, src's, or ctx's.
func (c *Conns) ReadResults(ctx context.Context, src ResultSource, job uint64, fn func(partition int, data []byte) error) error {
	var refs []ResultRef
	for i := 0; ; {
		if refs == nil {
			// (Re)read the job: at the start, and after a lost result.
			r, changed, err := src.JobResults(job)
			if err != nil {
				return err
			}
			if r == nil {
				select {
				case <-changed:
				case <-ctx.Done():
					return ctx.Err()
				}
				continue
			}
			refs = r
		}
		if i >= len(refs) {
			return nil
		}
		ref := refs[i]
		data := ref.Data
		if ref.Indirect {
			var err error
			data, err = c.FetchResult(ctx, ref.Addr, ref.Job, ref.Task)
			if err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				if rerr := src.ResultLost(ctx, ref, fmt.Errorf("blockstore: result of job %d partition %d on %s: %w", job, ref.Partition, ref.Addr, err)); rerr != nil {
					t := time.NewTimer(lostRetry)
					select {
					case <-t.C:
					case <-ctx.Done():
						t.Stop()
						return ctx.Err()
					}
				}
				refs = nil
				continue
			}
		}
		if err := fn(ref.Partition, data); err != nil {
			return err
		}
		i++
	}
}
