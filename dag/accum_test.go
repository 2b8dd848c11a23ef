package dag

import (
	"fmt"
	"math"
	"strings"
	"testing"
)

// TestAJobKeepsAtMostMaxJobAccumulators: tasks naming ever new
// accumulators cannot grow a job without bound; what does not fit is
// dropped and counted, in order, identically on every replica.
func TestAJobKeepsAtMostMaxJobAccumulators(t *testing.T) {
	var tab accTable
	for i := 0; i < MaxJobAccumulators+10; i++ {
		tab.merge([]Accumulator{{Name: fmt.Sprintf("n%04d", i), Kind: AccCount, Int: 1}})
	}
	tab.merge([]Accumulator{{Name: "n0000", Kind: AccCount, Int: 2}})
	if len(tab.list) != MaxJobAccumulators || tab.dropped != 10 {
		t.Fatalf("%d accumulators, %d dropped; want %d and 10", len(tab.list), tab.dropped, MaxJobAccumulators)
	}
	if a := tab.list[0]; a.Name != "n0000" || a.Int != 3 || a.Tasks != 2 {
		t.Fatalf("first accumulator %+v, want n0000 = 3 from 2 tasks", a)
	}
}

func TestCheckAccumulators(t *testing.T) {
	many := make([]Accumulator, MaxTaskAccumulators+1)
	for i := range many {
		many[i] = Accumulator{Name: fmt.Sprintf("a%03d", i), Kind: AccSum}
	}
	for _, c := range []struct {
		us   []Accumulator
		want string
	}{
		{nil, ""},
		{[]Accumulator{{Name: "a", Kind: AccSum, Int: -3}, {Name: "a", Kind: AccCount, Int: 3}, {Name: "b", Kind: AccMinFloat, Float: -1.5}}, ""},
		{many, "65 accumulator updates, at most 64"},
		{[]Accumulator{{Kind: AccSum}}, "without a name"},
		{[]Accumulator{{Name: strings.Repeat("x", MaxAccumulatorName+1), Kind: AccSum}}, "name of 129 bytes"},
		{[]Accumulator{{Name: "a\xff", Kind: AccSum}}, "not UTF-8"},
		{[]Accumulator{{Name: "a\nb", Kind: AccSum}}, "not UTF-8 text"},
		{[]Accumulator{{Name: "a", Kind: 99}}, "unknown kind 99"},
		{[]Accumulator{{Name: "a", Kind: AccMaxFloat, Float: math.Inf(1)}}, "maxFloat value +Inf"},
		{[]Accumulator{{Name: "a", Kind: AccSumFloat, Int: 1}}, "sumFloat value"},
		{[]Accumulator{{Name: "a", Kind: AccSum, Float: 1}}, "with a float value"},
		{[]Accumulator{{Name: "a", Kind: AccSum, Tasks: 1}}, "task count"},
	} {
		err := CheckAccumulators(c.us)
		if c.want == "" && err != nil || c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)) {
			t.Errorf("CheckAccumulators(%v) = %v, want %q", c.us, err, c.want)
		}
	}
}
