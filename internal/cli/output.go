package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/baton-sched/baton/api"
	"github.com/baton-sched/baton/ops"
)

// JSON output comes from the explicit types below, encoded with
// encoding/json by printJSON, for every command: numbers are numbers
// (ids too), states are the tables' lowercase names, times are RFC 3339
// (UTC), and what is unknown or does not apply is left out, never a -1.
// The field names are snake_case, stable across releases.

// printJSON writes v as indented JSON and a newline.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

// emit writes out as -o asks: json (out), name (names, one a line: the
// ids scripts want), or the table.
func (c *common) emit(out any, names []string, table func() error) error {
	switch {
	case c.json():
		return printJSON(c.env.Stdout, out)
	case c.name():
		if names == nil && out != nil {
			return usagef("-o name: %s prints no ids (use -o json)", c.cmd.name)
		}
		for _, n := range names {
			fmt.Fprintln(c.env.Stdout, n)
		}
		return nil
	}
	return table()
}

// stamp is a time in JSON: RFC 3339, left out when unknown (0).
func stamp(ns int64) *time.Time {
	if ns <= 0 {
		return nil
	}
	t := time.Unix(0, ns).UTC()
	return &t
}

func known64(v int64) *int64 {
	if v < 0 {
		return nil
	}
	return &v
}

// jobStateName is a job's state as tables and JSON name it.
func jobStateName(s api.JobState) string {
	if n, ok := jobStateNames[s]; ok {
		return n
	}
	return strings.TrimPrefix(strings.ToLower(s.String()), "job_state_")
}

type jobOut struct {
	ID                 uint64        `json:"id"`
	Name               string        `json:"name,omitempty"`
	State              string        `json:"state"`
	Message            string        `json:"message,omitempty"`
	Pool               string        `json:"pool,omitempty"`
	Group              string        `json:"group,omitempty"`
	Action             string        `json:"action,omitempty"`
	Tasks              int32         `json:"tasks"`
	Finished           int32         `json:"finished"`
	TaskSuccesses      int64         `json:"task_successes"`
	TaskFailures       int64         `json:"task_failures"`
	ResultBytes        int64         `json:"result_bytes"`
	Released           bool          `json:"released"`
	Submitted          *time.Time    `json:"submitted,omitempty"`
	Ended              *time.Time    `json:"ended,omitempty"`
	DurationMS         *int64        `json:"duration_ms,omitempty"`
	MapStage           bool          `json:"map_stage,omitempty"`
	MapStatistics      *mapStatsOut  `json:"map_statistics,omitempty"`
	AdaptiveTarget     int64         `json:"adaptive_target,omitempty"`
	Stages             []stageOut    `json:"stages"`
	Accumulators       []accOut      `json:"accumulators"`
	FailedAccumulators []accOut      `json:"failed_accumulators"`
	DroppedAccUpdates  int64         `json:"dropped_accumulator_updates,omitempty"`
	Results            *[][2]*string `json:"results,omitempty"`
}

type stageOut struct {
	ID             uint64     `json:"id"`
	Name           string     `json:"name"`
	Kind           string     `json:"kind"` // map or result
	Shuffle        *uint64    `json:"shuffle,omitempty"`
	State          string     `json:"state"`
	Attempt        *int32     `json:"attempt,omitempty"` // left out before the stage first ran
	FailedAttempts int32      `json:"failed_attempts"`
	Tasks          int32      `json:"tasks"`
	Pending        int32      `json:"pending"`
	Available      int32      `json:"available"`
	Parents        []uint64   `json:"parents"`
	Submitted      *time.Time `json:"submitted,omitempty"`
	Completed      *time.Time `json:"completed,omitempty"`
	Reducers       int32      `json:"reducers,omitempty"`
	Coalesced      []int32    `json:"coalesced,omitempty"`
}

type mapStatsOut struct {
	Shuffle        uint64   `json:"shuffle"`
	Maps           int32    `json:"maps"`
	MapsRegistered int32    `json:"maps_registered"`
	Reducers       int32    `json:"reducers"`
	TotalBytes     uint64   `json:"total_bytes"`
	ReducerBytes   []uint64 `json:"reducer_bytes"`
}

type accOut struct {
	Name  string `json:"name"`
	Kind  string `json:"kind"`
	Value any    `json:"value"`
	Tasks int64  `json:"tasks"`
}

func jobJSON(j *api.Job) jobOut {
	out := jobOut{ID: j.Id, Name: j.Name, State: jobStateName(j.State), Message: j.Message, Pool: j.Pool, Group: j.Group, Action: j.Action,
		Tasks: j.Tasks, Finished: j.Finished, TaskSuccesses: j.TaskSuccesses, TaskFailures: j.TaskFailures, ResultBytes: j.ResultBytes,
		Released: j.Released, Submitted: stamp(j.SubmittedUnixNano), Ended: stamp(j.EndedUnixNano), MapStage: j.MapStage,
		AdaptiveTarget: j.AdaptiveTarget, Stages: []stageOut{}, Accumulators: jsonAccumulators(j.Accumulators),
		FailedAccumulators: jsonAccumulators(j.FailedAccumulators), DroppedAccUpdates: j.DroppedAccumulatorUpdates}
	if j.SubmittedUnixNano > 0 {
		end := j.EndedUnixNano
		if end == 0 {
			end = time.Now().UnixNano()
		}
		d := time.Duration(end - j.SubmittedUnixNano).Milliseconds()
		out.DurationMS = &d
	}
	if m := j.MapStatistics; m != nil {
		out.MapStatistics = &mapStatsOut{Shuffle: m.Shuffle, Maps: m.Maps, MapsRegistered: m.MapsRegistered, Reducers: m.Reducers,
			TotalBytes: m.TotalBytes, ReducerBytes: append([]uint64{}, m.ReducerBytes...)}
	}
	for _, s := range j.Stages {
		so := stageOut{ID: s.Id, Name: s.Name, Kind: "result", State: stageStateName(s), FailedAttempts: s.FailedAttempts, Tasks: s.Tasks,
			Pending: s.Pending, Available: s.Available, Parents: append([]uint64{}, s.Parents...), Submitted: stamp(s.SubmittedUnixNano),
			Completed: stamp(s.CompletedUnixNano), Coalesced: s.Coalesced}
		if s.Map {
			sh := s.Shuffle
			so.Kind, so.Shuffle = "map", &sh
		}
		if s.Attempt >= 0 {
			a := s.Attempt
			so.Attempt = &a
		}
		if len(s.Coalesced) > 0 {
			so.Reducers = s.Reducers
		}
		out.Stages = append(out.Stages, so)
	}
	return out
}

// stageStateName is a stage's state as every command names it: a stage
// whose partitions are all available is complete (older members say
// idle).
func stageStateName(s *api.Stage) string {
	if s.State == "idle" && s.Tasks > 0 && s.Available >= s.Tasks {
		return "complete"
	}
	return s.State
}

// jsonAccumulators gives accumulators as plain JSON: values as numbers.
func jsonAccumulators(as []*api.Accumulator) []accOut {
	out := []accOut{}
	for _, a := range as {
		out = append(out, accOut{Name: a.Name, Kind: accKindName(a.Kind), Value: accValue(a), Tasks: a.Tasks})
	}
	return out
}

// jsonRecords renders records as [key, value] pairs (key null for a
// value-only record).
func jsonRecords(recs []ops.Record) *[][2]*string {
	out := make([][2]*string, 0, len(recs))
	for _, r := range recs {
		v := string(r.Value)
		var pair [2]*string
		pair[1] = &v
		if r.HasKey {
			k := string(r.Key)
			pair[0] = &k
		}
		out = append(out, pair)
	}
	return &out
}

type executorOut struct {
	ID            string     `json:"id"`
	Addr          string     `json:"addr"`
	Slots         int32      `json:"slots"`
	State         string     `json:"state"` // alive, unhealthy or lost
	Alive         bool       `json:"alive"`
	Unhealthy     string     `json:"unhealthy,omitempty"`
	RunningTasks  *int32     `json:"running_tasks,omitempty"` // known to the leader only
	LastHeartbeat *time.Time `json:"last_heartbeat,omitempty"`
	BlockBytes    *int64     `json:"block_bytes,omitempty"`
	Shuffles      *int64     `json:"shuffles,omitempty"`
	Registered    *time.Time `json:"registered,omitempty"`
	Lost          *time.Time `json:"lost,omitempty"`
	LostReason    string     `json:"lost_reason,omitempty"`
	Funcs         []string   `json:"funcs,omitempty"`
}

type executorsOut struct {
	Executors []executorOut `json:"executors"`
	// Replica names the member that answered from its replica (-stale
	// without a leader): what only the leader knows is left out.
	Replica string `json:"replica,omitempty"`
}

func executorJSON(e *api.Executor, replica bool) executorOut {
	out := executorOut{ID: e.Id, Addr: e.Addr, Slots: e.Cores, State: executorState(e), Alive: e.Alive, Unhealthy: e.Unhealthy,
		LastHeartbeat: stamp(e.LastHeartbeatUnixNano), BlockBytes: known64(e.BlockBytes), Shuffles: known64(int64(e.Shuffles)),
		Registered: stamp(e.RegisteredUnixNano), Lost: stamp(e.LostUnixNano), LostReason: e.LostReason, Funcs: e.Funcs}
	if !replica {
		n := e.RunningTasks
		out.RunningTasks = &n
	}
	return out
}

func executorState(e *api.Executor) string {
	switch {
	case !e.Alive:
		return "lost"
	case e.Unhealthy != "":
		return "unhealthy"
	}
	return "alive"
}

type peerOut struct {
	ID                string `json:"id"`
	State             string `json:"state"` // leader, follower, candidate or unreachable
	Leader            bool   `json:"leader"`
	Voter             bool   `json:"voter"`
	Reachable         bool   `json:"reachable"`
	RaftAddr          string `json:"raft_addr"`
	APIAddr           string `json:"api_addr,omitempty"`
	HTTPAddr          string `json:"http_addr,omitempty"`
	Term              uint64 `json:"term,omitempty"`
	CommitIndex       uint64 `json:"commit_index,omitempty"`
	AppliedIndex      uint64 `json:"applied_index,omitempty"`
	LastSnapshotIndex uint64 `json:"last_snapshot_index,omitempty"`
	LastContactMS     *int64 `json:"last_contact_ms,omitempty"`
}

func peerJSON(p *api.Peer) peerOut {
	out := peerOut{ID: p.Id, State: peerState(p), Leader: p.Leader, Voter: p.Voter, Reachable: p.Reachable, RaftAddr: p.RaftAddr,
		APIAddr: p.ApiAddr, HTTPAddr: p.HttpAddr}
	if p.Reachable {
		out.Term, out.CommitIndex, out.AppliedIndex, out.LastSnapshotIndex = p.Term, p.CommitIndex, p.AppliedIndex, p.LastSnapshotIndex
		out.LastContactMS = known64(p.LastContactMs)
	}
	return out
}

func peerState(p *api.Peer) string {
	if !p.Reachable {
		return "unreachable"
	}
	return strings.ToLower(p.State)
}

func peersJSON(ps []*api.Peer) []peerOut {
	out := []peerOut{}
	for _, p := range ps {
		out = append(out, peerJSON(p))
	}
	return out
}

type statusOut struct {
	LeaderID             string    `json:"leader_id,omitempty"`
	LeaderAPIAddr        string    `json:"leader_api_addr,omitempty"`
	Node                 string    `json:"node"`
	Term                 uint64    `json:"term"`
	CommitIndex          uint64    `json:"commit_index"`
	AppliedIndex         uint64    `json:"applied_index"`
	Executors            int32     `json:"executors"`
	ExecutorsAlive       int32     `json:"executors_alive"`
	Jobs                 int32     `json:"jobs"`
	JobsRunning          int32     `json:"jobs_running"`
	LeaderChanges        int32     `json:"leader_changes"`
	LeaderChangesWindowS int32     `json:"leader_changes_window_s"`
	Warning              string    `json:"warning,omitempty"`
	Peers                []peerOut `json:"peers"`
}

func statusJSON(st *api.StatusResponse) statusOut {
	return statusOut{LeaderID: st.LeaderId, LeaderAPIAddr: st.LeaderApiAddr, Node: st.Node.GetId(), Term: st.Node.GetTerm(),
		CommitIndex: st.Node.GetCommitIndex(), AppliedIndex: st.Node.GetAppliedIndex(), Executors: st.Executors, ExecutorsAlive: st.ExecutorsAlive,
		Jobs: st.Jobs, JobsRunning: st.JobsRunning, LeaderChanges: st.LeaderChanges, LeaderChangesWindowS: st.LeaderChangesWindowS,
		Warning: st.Warning, Peers: peersJSON(st.Peers)}
}

type takeoverOut struct {
	Term          uint64     `json:"term"`
	Leader        string     `json:"leader"`
	Won           *time.Time `json:"won,omitempty"`
	Ready         *time.Time `json:"ready,omitempty"`
	TookMS        *int64     `json:"took_ms,omitempty"`
	Executors     int32      `json:"executors"`
	ExecutorsBack int32      `json:"executors_back"`
}

type tokenOut struct {
	Accessor string     `json:"accessor"`
	Secret   string     `json:"secret,omitempty"`
	Name     string     `json:"name,omitempty"`
	Policy   string     `json:"policy"`
	Created  *time.Time `json:"created,omitempty"`
}

func tokenJSON(t *api.ACLToken) tokenOut {
	return tokenOut{Accessor: t.Accessor, Secret: t.Secret, Name: t.Name, Policy: t.Policy, Created: stamp(t.CreateUnixNano)}
}

type cachedOut struct {
	Key        string           `json:"key"`
	Name       string           `json:"name,omitempty"`
	Partitions int32            `json:"partitions"`
	Cached     int32            `json:"cached"`
	Bytes      int64            `json:"bytes"`
	Created    *time.Time       `json:"created,omitempty"`
	Executors  map[string]int32 `json:"executors"`
}
