package server

import (
	"time"

	"github.com/baton-sched/baton/api"
	"github.com/baton-sched/baton/dag"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// CollectResults streams a job's results, partition by partition, once
// the job has succeeded (it waits while the job runs). Direct results come
// from the replicated state, indirect ones from the executors' block
// services. When an indirect result cannot be read (its executor is gone,
// or the block is lost or corrupt), the partition is reported lost, runs
// again, and the collect waits for it.
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
	var refs []dag.ResultRef
	var addrs map[dag.ExecutorID]string
	for i := 0; ; {
		if refs == nil {
			// (Re)read the job: at the start, and after a lost result.
			changed := s.fsm.Changed()
			var info dag.JobInfo
			var found bool
			s.fsm.Read(func(st *dag.State) {
				if info, found = st.Job(id); !found || info.Status != dag.JobSucceeded || info.Released {
					return
				}
				refs, _, _ = st.Results(id)
				addrs = map[dag.ExecutorID]string{}
				for j := range refs {
					refs[j].Data = append([]byte(nil), refs[j].Data...) // out of the state before the lock goes
					if e, ok := st.Executor(refs[j].Executor); ok {
						addrs[refs[j].Executor] = e.Addr
					}
				}
			})
			switch {
			case !found:
				return status.Errorf(codes.NotFound, "job %d not found", req.JobId)
			case info.Status == dag.JobFailed || info.Status == dag.JobCancelled:
				// (A failed or cancelled job is released at once: say why.)
				return status.Errorf(codes.FailedPrecondition, "job %d has %s: %s", req.JobId, info.Status, info.Message)
			case info.Released:
				return status.Errorf(codes.FailedPrecondition, "job %d was released: its results are gone", req.JobId)
			case info.Status == dag.JobRunning:
				// Wait: the job is running, or re-running a lost result.
				select {
				case <-changed:
				case <-ctx.Done():
					return ctx.Err()
				case <-s.stop:
					return status.Error(codes.Unavailable, "node shutting down; collect again")
				}
				continue
			}
		}
		if i >= len(refs) {
			return nil
		}
		ref := refs[i]
		data := ref.Data
		if ref.Indirect {
			var err error
			data, err = s.blocks.FetchResult(ctx, addrs[ref.Executor], uint64(ref.Job), uint64(ref.Task))
			if err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				s.log.Warn("indirect result lost; the partition runs again", "job", req.JobId, "partition", ref.Partition, "executor", ref.Executor, "err", err)
				if _, rerr := s.ReportResultLost(internal(ctx), &api.ReportResultLostRequest{Job: req.JobId, Partition: int32(ref.Partition), Task: uint64(ref.Task), Reason: err.Error()}); rerr != nil {
					select {
					case <-time.After(100 * time.Millisecond):
					case <-ctx.Done():
						return ctx.Err()
					}
				}
				refs = nil
				continue
			}
		}
		if err := sendChunks(stream, int32(ref.Partition), data); err != nil {
			return err
		}
		i++
	}
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
