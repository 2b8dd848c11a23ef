package cli

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
)

func init() {
	register(&command{name: "stage", args: "ID", summary: "a stage and its task attempts: partitions, executors, states, reasons, durations (while a job holds the stage)", examples: "batonctl stage 4\nbatonctl stage 4 -o json",
		run: runStage})
}

type attemptOut struct {
	Task         uint64     `json:"task"`
	Partition    int32      `json:"partition"`
	Attempt      int32      `json:"attempt"`
	StageAttempt int32      `json:"stage_attempt"`
	Executor     string     `json:"executor"`
	State        string     `json:"state"`
	Speculative  bool       `json:"speculative,omitempty"`
	DurationMs   int64      `json:"duration_ms"`
	Started      *time.Time `json:"started,omitempty"`
	Ended        *time.Time `json:"ended,omitempty"`
	SpilledBytes int64      `json:"spilled_bytes,omitempty"`
	Message      string     `json:"message,omitempty"`
	Ignored      string     `json:"ignored,omitempty"`
}

type stageDetailOut struct {
	ID              uint64         `json:"id"`
	Name            string         `json:"name"`
	Map             bool           `json:"map"`
	State           string         `json:"state"`
	Tasks           int32          `json:"tasks"`
	Available       int32          `json:"available"`
	Jobs            []uint64       `json:"jobs"`
	AttemptsTotal   int32          `json:"attempts_total"`
	AttemptCounts   map[string]int `json:"attempt_counts"`
	HistoryComplete bool           `json:"history_complete"`
	Attempts        []attemptOut   `json:"attempts"`
}

func runStage(ctx context.Context, c *common, args []string) error {
	if len(args) != 1 {
		return usagef("stage needs exactly one stage id")
	}
	id, err := strconv.ParseUint(args[0], 10, 64)
	if err != nil {
		return usagef("stage id %q is not a number", args[0])
	}
	cl, err := c.dial()
	if err != nil {
		return err
	}
	defer cl.Close()
	d, err := cl.Stage(ctx, id)
	if err != nil {
		return err
	}
	s := d.GetStage()
	out := stageDetailOut{ID: s.GetId(), Name: s.GetName(), Map: s.GetMap(), State: s.GetState(), Tasks: s.GetTasks(), Available: s.GetAvailable(),
		Jobs: append([]uint64{}, d.Jobs...), AttemptsTotal: d.TasksTotal, AttemptCounts: map[string]int{}, HistoryComplete: d.HistoryComplete}
	for k, v := range d.TaskCounts {
		out.AttemptCounts[k] = int(v)
	}
	for _, t := range d.Tasks {
		out.Attempts = append(out.Attempts, attemptOut{Task: t.Task, Partition: t.Partition, Attempt: t.Attempt, StageAttempt: t.StageAttempt,
			Executor: t.Executor, State: t.State, Speculative: t.Speculative, DurationMs: t.DurationMs, Started: stamp(t.StartedUnixNano),
			Ended: stamp(t.EndedUnixNano), SpilledBytes: t.SpilledBytes, Message: t.Message, Ignored: t.Ignored})
	}
	var names []string
	for _, a := range out.Attempts {
		names = append(names, strconv.FormatUint(a.Task, 10))
	}
	return c.emit(out, names, func() error {
		w := c.env.Stdout
		kind := "result"
		if out.Map {
			kind = fmt.Sprintf("map (shuffle %d)", s.GetShuffle())
		}
		fmt.Fprintf(w, "Stage      %d %s, %s\n", out.ID, out.Name, kind)
		fmt.Fprintf(w, "State      %s, %d/%d done\n", out.State, out.Available, out.Tasks)
		var js []string
		for _, j := range out.Jobs {
			js = append(js, strconv.FormatUint(j, 10))
		}
		fmt.Fprintf(w, "Jobs       %s\n", dash(strings.Join(js, ", ")))
		var counts []string
		for k, v := range out.AttemptCounts {
			counts = append(counts, fmt.Sprintf("%s %d", k, v))
		}
		sort.Strings(counts)
		fmt.Fprintf(w, "Attempts   %d (%s)\n", out.AttemptsTotal, dash(strings.Join(counts, ", ")))
		if !out.HistoryComplete {
			fmt.Fprintln(w, "           this member started after the stage did: attempts that ended before are missing")
		}
		fmt.Fprintln(w)
		tw := table(w)
		fmt.Fprintln(tw, "PARTITION\tTASK\tATTEMPT\tSTAGE ATTEMPT\tEXECUTOR\tSTATE\tDURATION\tSPILLED\tREASON")
		for _, a := range out.Attempts {
			state := a.State
			if a.Speculative {
				state += " (copy)"
			}
			spilled := "-"
			if a.SpilledBytes > 0 {
				spilled = humanBytes(a.SpilledBytes)
			}
			fmt.Fprintf(tw, "%d\t%d\t%d\t%d\t%s\t%s\t%s\t%s\t%s\n", a.Partition, a.Task, a.Attempt, a.StageAttempt, dash(a.Executor), state,
				ms(a.DurationMs), spilled, dash(clipLine(a.Message)))
		}
		return tw.Flush()
	})
}

// clipLine keeps a message's first line, at most 100 bytes.
func clipLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	if len(s) > 100 {
		s = s[:97] + "..."
	}
	return s
}
