package ops

import (
	"fmt"
	"math"
	"strings"
	"testing"
)

func TestAccumulatorsMergeWithinATask(t *testing.T) {
	a := NewAccumulators()
	a.Count("rows", 2)
	a.Count("rows", 3)
	a.Add("rows", -1) // another accumulator: same name, another kind
	a.Min("low", 5)
	a.Min("low", -2)
	a.Max("high", 1)
	a.Max("high", 7)
	a.AddFloat("f", 0.5)
	a.AddFloat("f", 0.25)
	a.MaxFloat("g", -1)
	got, err := a.Updates()
	if err != nil {
		t.Fatal(err)
	}
	want := []AccUpdate{{"f", AccSumFloat, 0, 0.75}, {"g", AccMaxFloat, 0, -1}, {"high", AccMax, 7, 0}, {"low", AccMin, -2, 0},
		{"rows", AccSum, -1, 0}, {"rows", AccCount, 5, 0}}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("update %d: got %+v, want %+v", i, got[i], want[i])
		}
	}
	var none *Accumulators
	none.Count("x", 1) // discarded
	if us, err := none.Updates(); us != nil || err != nil {
		t.Fatalf("nil accumulators: %v, %v", us, err)
	}
}

func TestAccumulatorMisuseFailsTheTask(t *testing.T) {
	for _, c := range []struct {
		use  func(a *Accumulators)
		want string
	}{
		{func(a *Accumulators) { a.Count("", 1) }, "needs a name"},
		{func(a *Accumulators) { a.Count(strings.Repeat("n", 129), 1) }, "at most 128"},
		{func(a *Accumulators) { a.Count("a\x00", 1) }, "printable"},
		{func(a *Accumulators) { a.Count("c", -1) }, "a count of -1"},
		{func(a *Accumulators) { a.AddFloat("f", math.NaN()) }, "not a finite number"},
		{func(a *Accumulators) { a.AddFloat("f", math.MaxFloat64); a.AddFloat("f", math.MaxFloat64) }, "overflowed"},
		{func(a *Accumulators) {
			for i := 0; i <= MaxTaskAccumulators; i++ {
				a.Add(strings.Repeat("x", i+1), 1)
			}
		}, "at most 64 accumulators"},
	} {
		a := NewAccumulators()
		c.use(a)
		a.Count("later", 1) // updates after a misuse change nothing
		if _, err := a.Updates(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("got %v, want an error with %q", err, c.want)
		}
	}
}

func TestAccumulatorFunctions(t *testing.T) {
	reg := NewRegistry()
	build := func(name, args string) FilterFunc {
		t.Helper()
		f, ok := reg.Lookup(name)
		if !ok {
			t.Fatalf("no %s", name)
		}
		inst, err := f.New([]byte(args))
		if err != nil {
			t.Fatalf("%s %s: %v", name, args, err)
		}
		return inst.(FilterFunc)
	}
	tc := &TaskContext{Acc: NewAccumulators()}
	lines := []string{"a,b,c", "a,b", "\xff,x,y", "1,2,3,4"}
	wf, count := build("wellFormed", `{"acc":"malformed","fields":3,"sep":","}`), build("acc.count", `{"acc":"lines"}`)
	kept := 0
	for _, l := range lines {
		if ok, _ := count(tc, Record{Value: []byte(l)}); !ok {
			t.Fatal("acc.count dropped a record")
		}
		if ok, err := wf(tc, Record{Value: []byte(l)}); err != nil {
			t.Fatal(err)
		} else if ok {
			kept++
		}
	}
	sum, fmax := build("acc.sum", `{"acc":"total"}`), build("acc.max", `{"acc":"top","float":true}`)
	for _, v := range []string{"3", " 4 ", "-2"} {
		if _, err := sum(tc, Record{Value: []byte(v)}); err != nil {
			t.Fatal(err)
		}
		if _, err := fmax(tc, Record{Value: []byte(v)}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := sum(tc, Record{Value: []byte("x")}); err == nil {
		t.Fatal("acc.sum took a value that is not a number")
	}
	us, err := tc.Acc.Updates()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, u := range us {
		if u.Kind.Float() {
			got[u.Name+"/"+u.Kind.String()] = fmt.Sprint(u.Float)
		} else {
			got[u.Name+"/"+u.Kind.String()] = fmt.Sprint(u.Int)
		}
	}
	if kept != 2 || got["malformed/count"] != "2" || got["lines/count"] != "4" || got["total/sum"] != "5" || got["top/maxFloat"] != "4" {
		t.Fatalf("kept %d, updates %v", kept, got)
	}
	for _, bad := range []string{`{}`, `{"acc":""}`, `{"acc":"x","n":1}`} {
		f, _ := reg.Lookup("acc.count")
		if _, err := f.New([]byte(bad)); err == nil {
			t.Errorf("acc.count accepted %s", bad)
		}
	}
	f, _ := reg.Lookup("acc.count")
	if _, err := f.New([]byte(`{"acc":"x","float":true}`)); err == nil {
		t.Error(`acc.count accepted "float"`)
	}
}
