package ops

import (
	"fmt"
	"math"
	"sort"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"
)

// AccKind is how an accumulator merges its updates. The numbers are those
// of the scheduler's (dag.AccKind, api.AccumulatorKind).
type AccKind uint8

// Accumulator kinds.
const (
	AccSum      AccKind = iota + 1 // int64, added (wraps on overflow, as Go)
	AccCount                       // int64 ≥ 0, added
	AccMin                         // int64, the least
	AccMax                         // int64, the greatest
	AccSumFloat                    // float64, added
	AccMinFloat                    // float64, the least
	AccMaxFloat                    // float64, the greatest
)

var accKindNames = map[AccKind]string{
	AccSum: "sum", AccCount: "count", AccMin: "min", AccMax: "max",
	AccSumFloat: "sumFloat", AccMinFloat: "minFloat", AccMaxFloat: "maxFloat",
}

func (k AccKind) String() string { return accKindNames[k] }

// Float reports whether the kind's values are float64.
func (k AccKind) Float() bool { return k >= AccSumFloat && k <= AccMaxFloat }

// Accumulator limits per task, as the scheduler enforces them.
const (
	MaxTaskAccumulators = 64
	MaxAccumulatorName  = 128
)

// AccUpdate is a task's update of one accumulator: its value over the
// records the task saw.
type AccUpdate struct {
	Name  string
	Kind  AccKind
	Int   int64
	Float float64
}

// Accumulators collects one task attempt's accumulator updates (Spark's
// AccumulatorV2 on the executor side). An accumulator is a name and a
// kind: Count("bad", 1) and Add("bad", 1) update two accumulators. The
// scheduler merges a task's updates into its job once per partition, from
// the attempt whose output counts (see docs/plans.md). A nil *Accumulators
// discards updates. Safe for concurrent use.
type Accumulators struct {
	mu  sync.Mutex
	m   map[accKey]*AccUpdate
	err error // the first misuse; the task fails with it
}

type accKey struct {
	name string
	kind AccKind
}

// NewAccumulators returns an empty set of updates.
func NewAccumulators() *Accumulators { return &Accumulators{} }

func (a *Accumulators) update(name string, kind AccKind, fn func(u *AccUpdate, fresh bool)) {
	if a == nil {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.err != nil {
		return
	}
	k := accKey{name, kind}
	u := a.m[k]
	if u == nil {
		if err := checkAccName(name); err != nil {
			a.err = err
			return
		}
		if len(a.m) >= MaxTaskAccumulators {
			a.err = fmt.Errorf("ops: accumulator %q: a task may update at most %d accumulators", name, MaxTaskAccumulators)
			return
		}
		if a.m == nil {
			a.m = map[accKey]*AccUpdate{}
		}
		u = &AccUpdate{Name: name, Kind: kind}
		a.m[k] = u
		fn(u, true)
		return
	}
	fn(u, false)
}

func checkAccName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("ops: an accumulator needs a name")
	case len(name) > MaxAccumulatorName:
		return fmt.Errorf("ops: accumulator name of %d bytes, at most %d", len(name), MaxAccumulatorName)
	case !utf8.ValidString(name) || strings.ContainsFunc(name, unicode.IsControl):
		return fmt.Errorf("ops: accumulator name %q is not printable UTF-8 text", name)
	}
	return nil
}

func (a *Accumulators) intOp(name string, kind AccKind, n int64, merge func(old, n int64) int64) {
	a.update(name, kind, func(u *AccUpdate, fresh bool) {
		if fresh {
			u.Int = n
		} else {
			u.Int = merge(u.Int, n)
		}
	})
}

func (a *Accumulators) floatOp(name string, kind AccKind, x float64, merge func(old, x float64) float64) {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		a.fail(fmt.Errorf("ops: accumulator %q: %s of %v: not a finite number", name, kind, x))
		return
	}
	a.update(name, kind, func(u *AccUpdate, fresh bool) {
		if fresh {
			u.Float = x
		} else {
			u.Float = merge(u.Float, x)
		}
		if math.IsInf(u.Float, 0) {
			a.err = fmt.Errorf("ops: accumulator %q: %s overflowed", name, kind)
		}
	})
}

func (a *Accumulators) fail(err error) {
	if a == nil {
		return
	}
	a.mu.Lock()
	if a.err == nil {
		a.err = err
	}
	a.mu.Unlock()
}

func add(a, b int64) int64      { return a + b }
func addF(a, b float64) float64 { return a + b }
func minI(a, b int64) int64     { return min(a, b) }
func maxI(a, b int64) int64     { return max(a, b) }
func minF(a, b float64) float64 { return min(a, b) }
func maxF(a, b float64) float64 { return max(a, b) }

// Add adds n to the sum accumulator name.
func (a *Accumulators) Add(name string, n int64) { a.intOp(name, AccSum, n, add) }

// Count adds n ≥ 0 to the count accumulator name.
func (a *Accumulators) Count(name string, n int64) {
	if n < 0 {
		a.fail(fmt.Errorf("ops: accumulator %q: a count of %d", name, n))
		return
	}
	a.intOp(name, AccCount, n, add)
}

// Min keeps the least n of the min accumulator name.
func (a *Accumulators) Min(name string, n int64) { a.intOp(name, AccMin, n, minI) }

// Max keeps the greatest n of the max accumulator name.
func (a *Accumulators) Max(name string, n int64) { a.intOp(name, AccMax, n, maxI) }

// AddFloat adds x to the sumFloat accumulator name.
func (a *Accumulators) AddFloat(name string, x float64) { a.floatOp(name, AccSumFloat, x, addF) }

// MinFloat keeps the least x of the minFloat accumulator name.
func (a *Accumulators) MinFloat(name string, x float64) { a.floatOp(name, AccMinFloat, x, minF) }

// MaxFloat keeps the greatest x of the maxFloat accumulator name.
func (a *Accumulators) MaxFloat(name string, x float64) { a.floatOp(name, AccMaxFloat, x, maxF) }

// Updates returns the updates ascending by name then kind (the order the
// scheduler wants them in), or the first misuse: a bad name, a negative
// count, a float that is not finite, more than MaxTaskAccumulators.
func (a *Accumulators) Updates() ([]AccUpdate, error) {
	if a == nil {
		return nil, nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.err != nil {
		return nil, a.err
	}
	out := make([]AccUpdate, 0, len(a.m))
	for _, u := range a.m {
		out = append(out, *u)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Name != out[j].Name {
			return out[i].Name < out[j].Name
		}
		return out[i].Kind < out[j].Kind
	})
	return out, nil
}
