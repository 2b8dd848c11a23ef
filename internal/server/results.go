package server

import (
	"context"
	"errors"

	"github.com/baton-sched/baton/api"
	"github.com/baton-sched/baton/blockstore"
	"github.com/baton-sched/baton/dag"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// CollectResults streams a job's results, partition by partition, once
// the job has succeeded (it waits while the job runs). The reading is the
// block client's (blockstore.Conns.ReadResults): direct results from the
// replicated state, indirect ones from the executors' block services, a
// result that cannot be read reported lost and read again once its
// partition has run again.
func (s *Server) CollectResults(req *api.CollectResultsRequest, stream grpc.ServerStreamingServer[api.ResultChunk]) error {
	ctx := stream.Context()
	if err := s.waitIndex(ctx, req.MinIndex); err != nil {
		return err
	}
	id := dag.JobID(req.JobId)
	if _, err := s.lookup(ctx, func() bool {
		found := false
		s.fsm.Read(func(st *dag.State) { _, found = st.Job(id) })
		return found
	}); err != nil {
		return err
	}
	err := s.readResults(ctx, id, func(partition int, data []byte) error {
		return sendChunks(stream, int32(partition), data)
	})
	if errors.Is(err, errStopping) {
		return status.Error(codes.Unavailable, "node shutting down; collect again")
	}
	return err
}

// errStopping ends a read of results when the node stops.
var errStopping = errors.New("server: node shutting down")

// readResults reads a job's results through the block client, until ctx
// ends or the node stops (then errStopping).
func (s *Server) readResults(ctx context.Context, id dag.JobID, fn func(partition int, data []byte) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	// Ends when readResults returns (cancel).
	go func() {
		select {
		case <-s.stop:
			cancel(errStopping)
		case <-ctx.Done():
		}
	}()
	err := s.blocks.ReadResults(ctx, stateResults{s}, uint64(id), fn)
	if ctx.Err() != nil && errors.Is(context.Cause(ctx), errStopping) {
		return errStopping
	}
	return err
}

// stateResults is the replicated state as the block client's source of a
// job's results (blockstore.ResultSource).
type stateResults struct{ s *Server }

func (r stateResults) JobResults(job uint64) ([]blockstore.ResultRef, <-chan struct{}, error) {
	changed := r.s.fsm.Changed()
	id := dag.JobID(job)
	var info dag.JobInfo
	var found bool
	var refs []blockstore.ResultRef
	r.s.fsm.Read(func(st *dag.State) {
		if info, found = st.Job(id); !found || info.Status != dag.JobSucceeded || info.Released {
			return
		}
		rs, _, _ := st.Results(id)
		refs = make([]blockstore.ResultRef, len(rs))
		for i, ref := range rs {
			refs[i] = blockstore.ResultRef{Partition: ref.Partition, Job: uint64(ref.Job), Task: uint64(ref.Task), Indirect: ref.Indirect}
			if ref.Indirect {
				if e, ok := st.Executor(ref.Executor); ok {
					refs[i].Addr = e.Addr
				}
			} else {
				refs[i].Data = append([]byte(nil), ref.Data...) // out of the state before the lock goes
			}
		}
	})
	switch {
	case !found:
		return nil, nil, status.Errorf(codes.NotFound, "job %d not found", job)
	case info.Status == dag.JobFailed || info.Status == dag.JobCancelled:
		// (A failed or cancelled job is released at once: say why.)
		return nil, nil, status.Errorf(codes.FailedPrecondition, "job %d has %s: %s", job, info.Status, info.Message)
	case info.Released:
		return nil, nil, status.Errorf(codes.FailedPrecondition, "job %d was released: its results are gone", job)
	case info.Status == dag.JobRunning:
		// Running, or running a lost result again.
		return nil, changed, nil
	}
	return refs, nil, nil
}

func (r stateResults) ResultLost(ctx context.Context, ref blockstore.ResultRef, cause error) error {
	r.s.log.Warn("indirect result lost; the partition runs again", "job", ref.Job, "partition", ref.Partition, "addr", ref.Addr, "err", cause)
	_, err := r.s.reportResultLost(internal(ctx), &api.ReportResultLostRequest{Job: ref.Job, Partition: int32(ref.Partition), Task: ref.Task, Reason: cause.Error()})
	return err
}

func sendChunks(stream grpc.ServerStreamingServer[api.ResultChunk], partition int32, data []byte) error {
	const chunk = 1 << 20
	for {
		n := min(len(data), chunk)
		last := n == len(data)
		if err := stream.Send(&api.ResultChunk{Partition: partition, Data: data[:n], Last: last}); err != nil {
			return err
		}
		data = data[n:]
		if last {
			return nil
		}
	}
}
