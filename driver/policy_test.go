package driver

import (
	"testing"
)

// TestFairBefore pins Spark's FairSchedulingAlgorithm (PoolSuite, "Fair
// Scheduler Test"): pools below their minimum share come first, the
// neediest (running/minShare) first; then the fewest running tasks per
// unit of weight; then the name.
func TestFairBefore(t *testing.T) {
	p := func(name string, weight, minShare float64, running int) *fairPool {
		return &fairPool{name: name, weight: weight, minShare: minShare, running: running}
	}
	for _, tc := range []struct {
		name string
		a, b *fairPool
		want bool
	}{
		{"needy before satisfied", p("a", 1, 2, 1), p("b", 1, 0, 0), true},
		{"satisfied after needy", p("a", 1, 0, 0), p("b", 1, 2, 1), false},
		{"both needy: lower running/minShare first", p("a", 1, 4, 1), p("b", 1, 2, 1), true},
		{"both needy, equal ratio: by name", p("b", 1, 2, 1), p("a", 1, 4, 2), false},
		{"neither needy: lower running/weight first", p("a", 2, 0, 3), p("b", 1, 0, 2), true},
		{"neither needy: weight 1 with fewer running", p("a", 1, 0, 1), p("b", 3, 0, 4), true},
		{"equal: by name", p("a", 1, 0, 1), p("b", 1, 0, 1), true},
		{"minShare met is not needy", p("a", 1, 2, 2), p("b", 1, 0, 5), true},
	} {
		if got := fairBefore(tc.a, tc.b); got != tc.want {
			t.Errorf("%s: fairBefore(%s, %s) = %t, want %t", tc.name, tc.a.name, tc.b.name, got, tc.want)
		}
	}
}

// TestFairSharesByWeight: slot after slot, pools of weight 2 and 1 end
// with running tasks in the ratio 2:1; a pool with a minimum share gets
// it before any weight counts.
func TestFairSharesByWeight(t *testing.T) {
	assign := func(pools []*fairPool, slots int) []string {
		var order []string
		for i := 0; i < slots; i++ {
			var best *fairPool
			for _, fp := range pools {
				if best == nil || fairBefore(fp, best) {
					best = fp
				}
			}
			best.running++
			order = append(order, best.name)
		}
		return order
	}
	heavy, light := &fairPool{name: "heavy", weight: 2}, &fairPool{name: "light", weight: 1}
	assign([]*fairPool{heavy, light}, 12)
	if heavy.running != 8 || light.running != 4 {
		t.Errorf("heavy %d, light %d running of 12 slots: want 8 and 4", heavy.running, light.running)
	}
	big, min := &fairPool{name: "big", weight: 10}, &fairPool{name: "min", weight: 1, minShare: 3}
	if order := assign([]*fairPool{big, min}, 3); order[0] != "min" || order[1] != "min" || order[2] != "min" {
		t.Errorf("the first slots went to %v: want min's minimum share of 3 first", order)
	}
}
