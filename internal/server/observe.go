package server

import (
	"context"
	"sort"
	"sync"
	"time"

	"github.com/baton-sched/baton/api"
	"github.com/baton-sched/baton/dag"
	"github.com/baton-sched/baton/driver"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// This file serves what operators look at beyond jobs: a stage's task
// attempts, the leader history, and what executors report of themselves.

// GetStage returns a stage with its task attempts: the ends this node
// applied, and on the leader the attempts running.
func (s *Server) GetStage(ctx context.Context, req *api.GetStageRequest) (*api.StageDetail, error) {
	out := &api.StageDetail{}
	var begun int64
	found, err := s.lookup(ctx, func() bool {
		found := false
		s.fsm.Read(func(st *dag.State) {
			si, ok := st.Stage(dag.StageID(req.StageId))
			if !ok {
				return
			}
			found = true
			out.Stage = stageToProto(si)
			if si.Map {
				bytes, maps, ok := st.ShuffleStatistics(si.Shuffle)
				if ok {
					out.ReducerBytes, out.MapsRegistered = bytes, int32(maps)
				}
			}
			out.Jobs = nil
			for _, j := range si.Jobs {
				out.Jobs = append(out.Jobs, uint64(j))
			}
			begun = si.Submitted
		})
		return found
	})
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, status.Errorf(codes.NotFound, "stage %d not found (stages of released jobs are gone)", req.StageId)
	}
	out.HistoryComplete = begun == 0 || begun >= s.hist.since().UnixNano()
	// Sort and count light keys; build only the page asked for.
	type item struct {
		part    int32
		task    uint64
		num     int // the history record's number, or -1
		running *driver.AttemptInfo
	}
	keys := s.hist.keys(dag.StageID(req.StageId))
	running := s.drv.Attempts(dag.StageID(req.StageId))
	items := make([]item, 0, len(keys)+len(running))
	out.TaskCounts = map[string]int32{}
	for _, k := range keys {
		items = append(items, item{part: k.part, task: k.task, num: k.num})
		out.TaskCounts[k.state]++
	}
	for i := range running {
		a := &running[i]
		items = append(items, item{part: int32(a.Partition), task: a.Task, num: -1, running: a})
		out.TaskCounts["running"]++
	}
	sort.SliceStable(items, func(i, j int) bool {
		if items[i].part != items[j].part {
			return items[i].part < items[j].part
		}
		return items[i].task < items[j].task
	})
	out.TasksTotal = int32(len(items))
	offset, limit := int(max(req.TasksOffset, 0)), int(req.TasksLimit)
	if limit <= 0 {
		limit = 1000
	}
	limit = min(limit, maxPage)
	page := items[min(offset, len(items)):min(offset+limit, len(items))]
	var nums []int
	for _, it := range page {
		if it.num >= 0 {
			nums = append(nums, it.num)
		}
	}
	recs := s.hist.records(dag.StageID(req.StageId), nums)
	for _, it := range page {
		if a := it.running; a != nil {
			out.Tasks = append(out.Tasks, &api.TaskAttempt{
				Task: a.Task, Partition: int32(a.Partition), Attempt: int32(a.Attempt), StageAttempt: int32(a.StageAttempt),
				Executor: a.Executor, State: "running", StartedUnixNano: a.Started.UnixNano(), Speculative: a.Speculative,
				DurationMs: time.Since(a.Started).Milliseconds(),
			})
			continue
		}
		r, ok := recs[it.num]
		if !ok {
			continue // trimmed meanwhile
		}
		te := r.end()
		ta := &api.TaskAttempt{
			Task: uint64(te.Task), Partition: int32(te.Partition), Attempt: int32(te.Attempt), StageAttempt: int32(te.StageAttempt),
			Executor: string(te.Executor), State: te.Reason.Label(), Message: te.Message, DurationMs: te.DurationMs,
			EndedUnixNano: te.Time, ResultSize: te.ResultSize, Indirect: te.Indirect, MapBytes: te.MapBytes, Ignored: r.ignored(),
			SpilledBytes: te.SpilledBytes,
			Speculative:  te.Speculative,
		}
		if te.DurationMs > 0 && te.Time > 0 {
			ta.StartedUnixNano = te.Time - te.DurationMs*int64(time.Millisecond)
		}
		out.Tasks = append(out.Tasks, ta)
	}
	return out, nil
}

// stageState names a stage's state as the API, the CLI and the UI do: an
// idle stage whose partitions are all available is complete.
func stageState(si dag.StageInfo) string {
	if si.State == dag.StageIdle && si.Tasks > 0 && si.Available >= si.Tasks {
		return "complete"
	}
	return string(si.State)
}

func stageToProto(si dag.StageInfo) *api.Stage {
	ps := &api.Stage{
		Id: uint64(si.ID), Name: si.Name, Map: si.Map, State: stageState(si), Tasks: int32(si.Tasks),
		Pending: int32(si.Pending), Available: int32(si.Available), Attempt: int32(si.Attempt),
		FailedAttempts: int32(si.FailedAttempts), Shuffle: uint64(si.Shuffle),
		SubmittedUnixNano: si.Submitted, CompletedUnixNano: si.Completed,
	}
	for _, p := range si.Parents {
		ps.Parents = append(ps.Parents, uint64(p))
	}
	if si.Coalesced != nil {
		ps.Reducers = int32(si.Graph.Nodes[si.Node].Partitions)
		ps.Coalesced = make([]int32, len(si.Coalesced))
		for i, r := range si.Coalesced {
			ps.Coalesced[i] = int32(r)
		}
	}
	return ps
}

// LeaderHistory returns the latest leader takeovers, oldest first.
func (s *Server) LeaderHistory(ctx context.Context, req *api.LeaderHistoryRequest) (*api.LeaderHistoryResponse, error) {
	out := &api.LeaderHistoryResponse{}
	for _, l := range s.fsm.Leaders() {
		out.Takeovers = append(out.Takeovers, &api.Takeover{Id: l.ID, Term: l.Term, WonUnixNano: l.Won, ReadyUnixNano: l.Ready,
			Executors: int32(l.Executors), ExecutorsBack: int32(l.ExecutorsBack)})
	}
	return out, nil
}

// executorReports asks the live executors for their own stats, in
// parallel, giving each a moment: what does not answer stays unknown.
func (s *Server) executorReports(ctx context.Context, addrs map[string]string) map[string]*api.ExecutorStats {
	ctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	var mu sync.Mutex
	var wg sync.WaitGroup
	out := map[string]*api.ExecutorStats{}
	for id, addr := range addrs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl, err := s.blocks.Client(addr)
			if err != nil {
				return
			}
			st, err := cl.Stats(ctx, &api.ExecutorStatsRequest{})
			if err != nil {
				return
			}
			mu.Lock()
			out[id] = st
			mu.Unlock()
		}()
	}
	wg.Wait()
	return out
}
