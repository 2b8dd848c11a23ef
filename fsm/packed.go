package fsm

import (
	"fmt"
	"math"

	"github.com/baton-sched/baton/dag"
	"github.com/baton-sched/baton/fsm/fsmpb"
	"google.golang.org/protobuf/proto"
)

// This file packs runs of task successes. Most of a job's log is
// TaskEnded commands, one per task, and most of those are plain
// successes of the same stage attempt reported by the same executor in
// one batch: Encode writes such a run as one TasksEnded command (what the
// run shares once, the rest as packed arrays), and Decode gives back the
// TaskEnded commands it was, in order, each as the one-command encoding
// would have decoded it. The log stays the truth: every task end is in
// it, only packed. TasksEnded is an encoding of TaskEnded, not a command
// of its own, so it has no registration in commands.go.

// minPackedRun is the shortest run Encode packs (a lone success is
// written as the TaskEnded it is), and maxPackedRun the longest: a
// longer run goes in several commands, and a TasksEnded of more tasks
// is corrupt.
const (
	minPackedRun = 2
	maxPackedRun = 1 << 16
)

// packable reports whether a task end may be packed: a success with
// nothing but what TasksEnded carries.
func packable(c dag.Command) (*dag.TaskEnded, bool) {
	te, ok := c.(*dag.TaskEnded)
	if !ok || te == nil || te.Reason != dag.Success || te.Message != "" || len(te.Accumulators) > 0 || len(te.Cached) > 0 ||
		te.ExitCausedByApp || te.FetchExecutor != "" || te.FetchShuffle != 0 || te.FetchMap != 0 || te.FetchReduce != 0 ||
		te.ResultSize < 0 || te.DurationMs < 0 || te.Partition < 0 || te.Partition > math.MaxInt32 || te.Attempt < 0 || te.Attempt > math.MaxInt32 ||
		te.StageAttempt < 0 || te.StageAttempt > math.MaxInt32 || len(te.MapSizes) > math.MaxUint32 || len(te.Result) > math.MaxUint32 {
		return nil, false
	}
	return te, true
}

// samePack reports whether b may join a run that a starts.
func samePack(a, b *dag.TaskEnded) bool {
	return a.Stage == b.Stage && a.StageAttempt == b.StageAttempt && a.Executor == b.Executor && a.Epoch == b.Epoch
}

// encodeCommands encodes a batch of scheduler commands, packing the runs
// of successes.
func encodeCommands(cmds []dag.Command) ([]*fsmpb.Command, error) {
	pcs := make([]*fsmpb.Command, 0, len(cmds))
	for i := 0; i < len(cmds); {
		if first, ok := packable(cmds[i]); ok {
			j := i + 1
			for j < len(cmds) && j-i < maxPackedRun {
				te, ok := packable(cmds[j])
				if !ok || !samePack(first, te) {
					break
				}
				j++
			}
			if j-i >= minPackedRun {
				pc, err := encodePacked(cmds[i:j])
				if err != nil {
					return nil, err
				}
				pcs = append(pcs, pc)
				i = j
				continue
			}
		}
		pc, err := encodeCommand(cmds[i])
		if err != nil {
			return nil, err
		}
		pcs = append(pcs, pc)
		i++
	}
	return pcs, nil
}

// encodePacked encodes a run of packable successes sharing their stage
// attempt, executor and epoch.
func encodePacked(run []dag.Command) (*fsmpb.Command, error) {
	first := run[0].(*dag.TaskEnded)
	n := len(run)
	m := &fsmpb.TasksEnded{Stage: uint64(first.Stage), StageAttempt: int32(first.StageAttempt), Executor: string(first.Executor), Epoch: first.Epoch,
		TaskDeltas: make([]int64, n), Partitions: make([]int32, n)}
	var any struct{ attempts, durations, mapBytes, mapSizes, resultSizes, results, spilled, flags bool }
	for _, c := range run {
		te := c.(*dag.TaskEnded)
		any.attempts = any.attempts || te.Attempt != 0
		any.durations = any.durations || te.DurationMs != 0
		any.mapBytes = any.mapBytes || te.MapBytes != 0
		any.mapSizes = any.mapSizes || len(te.MapSizes) > 0
		any.resultSizes = any.resultSizes || te.ResultSize != 0
		any.results = any.results || len(te.Result) > 0
		any.spilled = any.spilled || te.SpilledBytes > 0
		any.flags = any.flags || te.Indirect || te.Speculative
	}
	if any.attempts {
		m.Attempts = make([]int32, n)
	}
	if any.durations {
		m.DurationMs = make([]int64, n)
	}
	if any.mapBytes {
		m.MapBytes = make([]uint64, n)
	}
	if any.mapSizes {
		m.MapSizeLens = make([]uint32, n)
	}
	if any.resultSizes {
		m.ResultSizes = make([]int64, n)
	}
	if any.results {
		m.ResultLens = make([]uint32, n)
	}
	if any.spilled {
		m.SpilledBytes = make([]int64, n)
	}
	if any.flags {
		m.Flags = make([]uint32, n)
	}
	prev := uint64(0)
	for i, c := range run {
		te := c.(*dag.TaskEnded)
		m.TaskDeltas[i] = int64(uint64(te.Task) - prev)
		prev = uint64(te.Task)
		m.Partitions[i] = int32(te.Partition)
		if any.attempts {
			m.Attempts[i] = int32(te.Attempt)
		}
		if any.durations {
			m.DurationMs[i] = te.DurationMs
		}
		if any.mapBytes {
			m.MapBytes[i] = te.MapBytes
		}
		if any.mapSizes {
			m.MapSizeLens[i] = uint32(len(te.MapSizes))
			m.MapSizes = append(m.MapSizes, te.MapSizes...)
		}
		if any.resultSizes {
			m.ResultSizes[i] = te.ResultSize
		}
		if any.results {
			m.ResultLens[i] = uint32(len(te.Result))
			m.Results = append(m.Results, te.Result...)
		}
		if any.spilled {
			m.SpilledBytes[i] = max(te.SpilledBytes, 0)
		}
		if any.flags {
			if te.Indirect {
				m.Flags[i] |= flagIndirect
			}
			if te.Speculative {
				m.Flags[i] |= flagSpeculative
			}
		}
	}
	payload, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("fsm: encode TasksEnded: %w", err)
	}
	return &fsmpb.Command{Type: fsmpb.Type_TYPE_TASKS_ENDED, Payload: payload}, nil
}

const (
	flagIndirect    = 1
	flagSpeculative = 2
	knownFlags      = flagIndirect | flagSpeculative
)

// decodePacked decodes a TasksEnded payload into the TaskEnded commands
// it packs, stamped now. Every array must hold one value per task or
// none, and the lengths must account for the bytes exactly: a payload
// that does not is corrupt (never a panic, and nothing is allocated
// beyond what the payload's own size bounds).
func decodePacked(p []byte, now int64) ([]dag.Command, error) {
	var m fsmpb.TasksEnded
	if err := proto.Unmarshal(p, &m); err != nil {
		return nil, err
	}
	n := len(m.TaskDeltas)
	if n == 0 || n > maxPackedRun {
		return nil, fmt.Errorf("%d tasks (1 to %d)", n, maxPackedRun)
	}
	if len(m.Partitions) != n {
		return nil, fmt.Errorf("%d partitions for %d tasks", len(m.Partitions), n)
	}
	for _, a := range []struct {
		name string
		len  int
	}{{"attempts", len(m.Attempts)}, {"durations", len(m.DurationMs)}, {"map bytes", len(m.MapBytes)}, {"map size lengths", len(m.MapSizeLens)},
		{"result sizes", len(m.ResultSizes)}, {"result lengths", len(m.ResultLens)}, {"spilled bytes", len(m.SpilledBytes)}, {"flags", len(m.Flags)}} {
		if a.len != 0 && a.len != n {
			return nil, fmt.Errorf("%d %s for %d tasks", a.len, a.name, n)
		}
	}
	if err := checkLens(m.MapSizeLens, len(m.MapSizes), "map sizes"); err != nil {
		return nil, err
	}
	if err := checkLens(m.ResultLens, len(m.Results), "results"); err != nil {
		return nil, err
	}
	ends := make([]dag.TaskEnded, n)
	out := make([]dag.Command, n)
	task := uint64(0)
	var mapOff, resOff int
	for i := range ends {
		te := &ends[i]
		task += uint64(m.TaskDeltas[i])
		*te = dag.TaskEnded{Time: now, Task: dag.TaskID(task), Stage: dag.StageID(m.Stage), StageAttempt: int(m.StageAttempt),
			Partition: int(m.Partitions[i]), Executor: dag.ExecutorID(m.Executor), Epoch: m.Epoch, Reason: dag.Success}
		if m.Attempts != nil {
			te.Attempt = int(m.Attempts[i])
		}
		if m.DurationMs != nil {
			te.DurationMs = m.DurationMs[i]
		}
		if m.MapBytes != nil {
			te.MapBytes = m.MapBytes[i]
		}
		if m.MapSizeLens != nil {
			if l := int(m.MapSizeLens[i]); l > 0 {
				te.MapSizes = m.MapSizes[mapOff : mapOff+l : mapOff+l]
				mapOff += l
			}
		}
		if m.ResultSizes != nil {
			te.ResultSize = m.ResultSizes[i]
		}
		if m.ResultLens != nil {
			if l := int(m.ResultLens[i]); l > 0 {
				te.Result = m.Results[resOff : resOff+l : resOff+l]
				resOff += l
			}
		}
		if m.SpilledBytes != nil {
			te.SpilledBytes = max(m.SpilledBytes[i], 0)
		}
		if m.Flags != nil {
			f := m.Flags[i]
			if f&^knownFlags != 0 {
				return nil, fmt.Errorf("task %d: unknown flags %#x", i, f)
			}
			te.Indirect, te.Speculative = f&flagIndirect != 0, f&flagSpeculative != 0
		}
		out[i] = te
	}
	return out, nil
}

// checkLens checks that lengths account for exactly total bytes.
func checkLens(lens []uint32, total int, what string) error {
	sum := 0
	for _, l := range lens {
		if int(l) > total-sum {
			return fmt.Errorf("%s: lengths pass the %d bytes held", what, total)
		}
		sum += int(l)
	}
	if sum != total {
		return fmt.Errorf("%s: lengths sum to %d of %d bytes", what, sum, total)
	}
	return nil
}
