package dag

import (
	"fmt"
	"math"
	"sort"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Accumulators (Spark's AccumulatorV2, with DAGScheduler.updateAccumulators
// as the merge). Tasks update named accumulators; the updates of an
// attempt ride in its TaskEnded and the state merges them into the job:
//
//   - a success's updates once per partition of a stage, on the partition's
//     first registered success (a map output registered, a result stored),
//     whatever retries, speculative copies, stage resubmissions, lost
//     results and leader changes happen around it. Spark promises that for
//     result stages only; here it holds for map stages too, because the
//     state remembers which partitions of a stage merged (stage.accMerged).
//     The updates of a success that registers nothing (a duplicate, a losing
//     speculative copy, a map output from a lost executor) are dropped;
//   - a failed attempt's updates, kept apart (Spark's ExceptionFailure
//     carries them; only accumulators with countFailedValues count them),
//     once per attempt.
//
// An accumulator is its name and kind together: "rows" as a count and
// "rows" as a sum are two accumulators. A job holds at most
// MaxJobAccumulators of each table; updates of more are dropped and counted.

// AccKind is an accumulator's merge function and value type.
type AccKind uint8

// Accumulator kinds. The enum is append-only: it is part of the log.
const (
	AccSum      AccKind = iota + 1 // int64, added (wraps on overflow, as Go)
	AccCount                       // int64 ≥ 0, added
	AccMin                         // int64, the least
	AccMax                         // int64, the greatest
	AccSumFloat                    // float64, added in log order
	AccMinFloat                    // float64, the least
	AccMaxFloat                    // float64, the greatest
)

var accKindNames = map[AccKind]string{
	AccSum: "sum", AccCount: "count", AccMin: "min", AccMax: "max",
	AccSumFloat: "sumFloat", AccMinFloat: "minFloat", AccMaxFloat: "maxFloat",
}

func (k AccKind) String() string {
	if n, ok := accKindNames[k]; ok {
		return n
	}
	return fmt.Sprintf("AccKind(%d)", k)
}

// Float reports whether the kind's value is Float (else Int).
func (k AccKind) Float() bool { return k >= AccSumFloat && k <= AccMaxFloat }

// ParseAccKind returns the kind a name (as AccKind.String gives) stands for.
func ParseAccKind(s string) (AccKind, bool) {
	for k, n := range accKindNames {
		if n == s {
			return k, true
		}
	}
	return 0, false
}

// Accumulator limits: what one task may report (checked by the driver
// before anything is logged, and by the state again) and what a job keeps.
const (
	MaxTaskAccumulators = 64
	MaxAccumulatorName  = 128
	MaxJobAccumulators  = 256
)

// Accumulator is a named value: a task's update, or a job's total.
type Accumulator struct {
	Name  string
	Kind  AccKind
	Int   int64   // the value of an integer kind (0 for a float kind)
	Float float64 // the value of a float kind (0 for an integer kind)
	// Tasks is how many task ends were merged into a job's total
	// (partitions for successes, attempts for failures); 0 in an update.
	Tasks int64
}

// Value returns the value as text: an integer, or a float in the
// shortest form that reads back the same.
func (a Accumulator) Value() string {
	if a.Kind.Float() {
		return fmt.Sprint(a.Float)
	}
	return fmt.Sprint(a.Int)
}

func accLess(a, b *Accumulator) bool {
	if a.Name != b.Name {
		return a.Name < b.Name
	}
	return a.Kind < b.Kind
}

// CheckAccumulators reports why a task's updates cannot be logged: more
// than MaxTaskAccumulators, a name empty, longer than MaxAccumulatorName,
// not UTF-8 or with control characters, an unknown kind, a negative count,
// a float that is not finite, a value in the other kind's field, or
// updates not in ascending (name, kind) order without repeats (the order
// executors send them in, which makes one encoding per set of updates).
func CheckAccumulators(us []Accumulator) error {
	if len(us) > MaxTaskAccumulators {
		return fmt.Errorf("%d accumulator updates, at most %d", len(us), MaxTaskAccumulators)
	}
	for i := range us {
		u := &us[i]
		switch {
		case u.Name == "":
			return fmt.Errorf("an accumulator without a name")
		case len(u.Name) > MaxAccumulatorName:
			return fmt.Errorf("accumulator name of %d bytes, at most %d", len(u.Name), MaxAccumulatorName)
		case !utf8.ValidString(u.Name) || strings.ContainsFunc(u.Name, unicode.IsControl):
			return fmt.Errorf("accumulator name %q: not UTF-8 text", u.Name)
		case accKindNames[u.Kind] == "":
			return fmt.Errorf("accumulator %q: unknown kind %d", u.Name, u.Kind)
		case u.Kind.Float() && (u.Int != 0 || math.IsNaN(u.Float) || math.IsInf(u.Float, 0)):
			return fmt.Errorf("accumulator %q: %s value %v", u.Name, u.Kind, u.Float)
		case !u.Kind.Float() && u.Float != 0:
			return fmt.Errorf("accumulator %q: %s with a float value", u.Name, u.Kind)
		case u.Kind == AccCount && u.Int < 0:
			return fmt.Errorf("accumulator %q: negative count %d", u.Name, u.Int)
		case u.Tasks != 0:
			return fmt.Errorf("accumulator %q: an update with a task count", u.Name)
		case i > 0 && !accLess(&us[i-1], u):
			return fmt.Errorf("accumulator updates out of order or repeated at %q (%s)", u.Name, u.Kind)
		}
	}
	return nil
}

// accTable is a job's accumulators of one kind of end, ascending by
// (name, kind).
type accTable struct {
	list    []Accumulator
	dropped int64 // updates of accumulators past MaxJobAccumulators
}

// merge adds one task end's updates.
func (t *accTable) merge(us []Accumulator) {
	for i := range us {
		u := &us[i]
		k := sort.Search(len(t.list), func(k int) bool { return !accLess(&t.list[k], u) })
		if k == len(t.list) || t.list[k].Name != u.Name || t.list[k].Kind != u.Kind {
			if len(t.list) >= MaxJobAccumulators {
				t.dropped++
				continue
			}
			t.list = append(t.list, Accumulator{})
			copy(t.list[k+1:], t.list[k:])
			t.list[k] = Accumulator{Name: u.Name, Kind: u.Kind, Int: u.Int, Float: u.Float, Tasks: 1}
			continue
		}
		a := &t.list[k]
		a.Tasks++
		switch u.Kind {
		case AccSum, AccCount:
			a.Int += u.Int
		case AccMin:
			a.Int = min(a.Int, u.Int)
		case AccMax:
			a.Int = max(a.Int, u.Int)
		case AccSumFloat:
			a.Float += u.Float
		case AccMinFloat:
			a.Float = min(a.Float, u.Float)
		case AccMaxFloat:
			a.Float = max(a.Float, u.Float)
		}
	}
}

// mergeSuccessAccs merges a registered success's updates into the jobs of
// its stage, unless the partition's updates were merged before.
func (s *State) mergeSuccessAccs(st *stage, idx int, c *TaskEnded) {
	if len(c.Accumulators) == 0 {
		return
	}
	if st.accMerged == nil {
		st.accMerged = newBitset(st.nTasks)
	}
	if st.accMerged.has(idx) {
		return
	}
	st.accMerged.set(idx)
	s.eachRunningJob(st, func(j *job) { j.accs.merge(c.Accumulators) })
}

// mergeFailedAccs keeps a failed attempt's updates apart.
func (s *State) mergeFailedAccs(st *stage, c *TaskEnded) {
	if len(c.Accumulators) == 0 {
		return
	}
	s.eachRunningJob(st, func(j *job) { j.failedAccs.merge(c.Accumulators) })
}

// eachRunningJob calls fn with each running job that needs the stage.
func (s *State) eachRunningJob(st *stage, fn func(*job)) {
	if !st.isMap {
		if j := s.jobs[st.job]; j != nil && j.status == JobRunning {
			fn(j)
		}
		return
	}
	for _, id := range st.jobs {
		if j := s.jobs[JobID(id)]; j != nil && j.status == JobRunning {
			fn(j)
		}
	}
}

func (t *accTable) info() []Accumulator {
	if len(t.list) == 0 {
		return nil
	}
	return append([]Accumulator(nil), t.list...)
}

func (e *encoder) accTable(t *accTable) {
	e.uint(uint64(len(t.list)))
	for _, a := range t.list {
		e.str(a.Name)
		e.uint(uint64(a.Kind))
		e.int(a.Int)
		e.uint(math.Float64bits(a.Float))
		e.int(a.Tasks)
	}
	e.int(t.dropped)
}

func (d *decoder) accTable(t *accTable) {
	n := d.count()
	if n > MaxJobAccumulators {
		d.fail("%d accumulators, at most %d", n, MaxJobAccumulators)
		return
	}
	for ; n > 0 && d.err == nil; n-- {
		a := Accumulator{Name: d.str(), Kind: AccKind(d.uint()), Int: d.int(), Float: math.Float64frombits(d.uint()), Tasks: d.int()}
		if k := len(t.list); k > 0 && !accLess(&t.list[k-1], &a) {
			d.fail("accumulators out of order at %q", a.Name)
		}
		t.list = append(t.list, a)
	}
	t.dropped = d.int()
}

func (e *encoder) accMerged(st *stage) {
	e.bool(st.accMerged != nil)
	if st.accMerged != nil {
		for _, w := range st.accMerged {
			e.uint(w)
		}
	}
}

func (d *decoder) accMerged(st *stage) {
	if d.bool() {
		st.accMerged = newBitset(st.nTasks)
		for i := range st.accMerged {
			st.accMerged[i] = d.uint()
		}
	}
}
