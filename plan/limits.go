package plan

import (
	"fmt"
	"math"
	"strconv"
)

// MaxPartitions is the most partitions any dataset may have: the plan's
// wire form carries partition counts as 32-bit integers, and a count that
// does not fit is refused rather than truncated.
const MaxPartitions = math.MaxInt32

// Limits bound what one plan may ask of the scheduler. They are checked
// before anything is logged, so each is a clear refusal naming the limit,
// never a replica running out of memory. A zero field is not checked.
type Limits struct {
	// Tasks bounds the tasks of one job: its result partitions plus the
	// map partitions of every shuffle it reads (see Graph.Tasks).
	Tasks int64
	// Datasets bounds the datasets of one plan.
	Datasets int
	// Records bounds the inline records (parallelize) of one plan, all
	// datasets together.
	Records int
	// ArgBytes bounds the arguments of one function reference, and of a
	// pipe's command, arguments and environment together.
	ArgBytes int
}

// LimitError is a plan over one of its Limits.
type LimitError struct {
	// Limit names the limit (one of the Limit* constants).
	Limit string
	// Where says which part of the plan is over it ("" for the plan).
	Where string
	Got   int64
	Max   int64
	// Flag, when set, names the setting that raises the limit.
	Flag string
}

// The limits a LimitError names.
const (
	LimitTasks    = "tasks per job"
	LimitDatasets = "datasets per plan"
	LimitRecords  = "inline records per plan"
	LimitArgBytes = "function argument bytes"
)

func (e *LimitError) Error() string {
	where := ""
	if e.Where != "" {
		where = e.Where + ": "
	}
	msg := fmt.Sprintf("plan: %s%s: %s is over the limit of %s", where, e.Limit, group(e.Got), group(e.Max))
	if e.Flag != "" {
		msg += " (schedd " + e.Flag + ")"
	}
	return msg
}

// group writes n with thousands separators.
func group(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := ""
	if n < 0 {
		neg, s = "-", s[1:]
	}
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return neg + s
}

// CheckLimits checks the plan's own size against l: datasets, inline
// records and argument bytes. The tasks a plan makes are known once it is
// compiled: see Graph.CheckLimits.
func (p *Plan) CheckLimits(l Limits) error {
	if l.Datasets > 0 && len(p.Datasets) > l.Datasets {
		return &LimitError{Limit: LimitDatasets, Got: int64(len(p.Datasets)), Max: int64(l.Datasets)}
	}
	records := 0
	for _, name := range p.Names() {
		d := p.Datasets[name]
		if d == nil {
			continue
		}
		// A dataset's partitions are tasks of the job's stages: a count
		// over the limit is refused before files are listed for it.
		if l.Tasks > 0 && int64(d.Partitions) > l.Tasks {
			return &LimitError{Limit: LimitTasks, Where: fmt.Sprintf("dataset %q", name), Got: int64(d.Partitions), Max: l.Tasks}
		}
		records += len(d.Records)
		if l.Records > 0 && records > l.Records {
			return &LimitError{Limit: LimitRecords, Got: int64(p.records()), Max: int64(l.Records)}
		}
		if l.ArgBytes <= 0 {
			continue
		}
		where := fmt.Sprintf("dataset %q", name)
		if d.Fn != nil && len(d.Fn.Args) > l.ArgBytes {
			return &LimitError{Limit: LimitArgBytes, Where: where, Got: int64(len(d.Fn.Args)), Max: int64(l.ArgBytes)}
		}
		if n := pipeBytes(d); n > l.ArgBytes {
			return &LimitError{Limit: LimitArgBytes, Where: where, Got: int64(n), Max: int64(l.ArgBytes)}
		}
	}
	if l.ArgBytes > 0 && p.Action.Fn != nil && len(p.Action.Fn.Args) > l.ArgBytes {
		return &LimitError{Limit: LimitArgBytes, Where: "action", Got: int64(len(p.Action.Fn.Args)), Max: int64(l.ArgBytes)}
	}
	return nil
}

func (p *Plan) records() int {
	n := 0
	for _, d := range p.Datasets {
		if d != nil {
			n += len(d.Records)
		}
	}
	return n
}

// pipeBytes is the size of a pipe's command line and environment.
func pipeBytes(d *Dataset) int {
	n := len(d.Command)
	for _, a := range d.Args {
		n += len(a)
	}
	for k, v := range d.Env {
		n += len(k) + len(v)
	}
	return n
}

// Tasks returns how many tasks a job of this graph runs at most: the
// output node's partitions plus, for every shuffle the job reads directly
// or through its ancestors, the map side's partitions. (A shuffle another
// job already computed is not run again; this is the upper bound.) The sum
// saturates instead of overflowing.
func (g *Graph) Tasks() int64 {
	if g.Output < 0 || g.Output >= len(g.Nodes) {
		return 0
	}
	total := int64(g.Nodes[g.Output].Partitions)
	seen := map[string]bool{}
	todo := []int{g.Output}
	visited := make([]bool, len(g.Nodes))
	for len(todo) > 0 {
		n := todo[len(todo)-1]
		todo = todo[:len(todo)-1]
		if n < 0 || n >= len(g.Nodes) || visited[n] {
			continue
		}
		visited[n] = true
		for _, d := range g.Nodes[n].Deps {
			if d.Parent < 0 || d.Parent >= len(g.Nodes) {
				continue
			}
			if d.Kind == Shuffle && d.Shuffle != nil && !seen[d.Shuffle.Key] {
				seen[d.Shuffle.Key] = true
				total = satAdd(total, int64(g.Nodes[d.Parent].Partitions))
			}
			todo = append(todo, d.Parent)
		}
	}
	return total
}

func satAdd(a, b int64) int64 {
	if b > 0 && a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}

// CheckLimits checks the compiled graph against l's task limit.
func (g *Graph) CheckLimits(l Limits) error {
	if l.Tasks > 0 {
		if n := g.Tasks(); n > l.Tasks {
			return &LimitError{Limit: LimitTasks, Got: n, Max: l.Tasks}
		}
	}
	return nil
}
