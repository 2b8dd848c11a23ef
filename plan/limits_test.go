package plan

import (
	"errors"
	"strings"
	"testing"
)

func TestPartitionsOutOfRangeAreRefusedNotTruncated(t *testing.T) {
	for _, n := range []string{"4294967297", "10000000000", "2147483648"} {
		_, err := Parse([]byte(`{"datasets":{"r":{"op":"range","n":1,"partitions":` + n + `}},"action":{"op":"count","input":"r"}}`))
		if err == nil || !strings.Contains(err.Error(), "partitions "+n+" out of range (at most 2147483647)") {
			t.Errorf("partitions %s: %v", n, err)
		}
	}
}

func TestLimits(t *testing.T) {
	lim := Limits{Tasks: 100, Datasets: 3, Records: 2, ArgBytes: 10}
	for _, tc := range []struct{ name, plan, want string }{
		{"dataset partitions", `{"datasets":{"r":{"op":"range","n":1,"partitions":101}},"action":{"op":"count","input":"r"}}`,
			`plan: dataset "r": tasks per job: 101 is over the limit of 100`},
		{"map and reduce tasks add up", `{"datasets":{"r":{"op":"range","n":1,"partitions":60},"k":{"op":"map","input":"r","fn":"pairWithOne"},"g":{"op":"groupByKey","input":"k","partitions":60}},"action":{"op":"count","input":"g"}}`,
			"plan: tasks per job: 120 is over the limit of 100"},
		{"union adds up", `{"datasets":{"r":{"op":"range","n":1,"partitions":40},"u":{"op":"union","inputs":["r","r","r"]}},"action":{"op":"count","input":"u"}}`,
			"plan: tasks per job: 120 is over the limit of 100"},
		{"datasets", `{"datasets":{"a":{"op":"range","n":1,"partitions":1},"b":{"op":"range","n":1,"partitions":1},"c":{"op":"range","n":1,"partitions":1},"d":{"op":"range","n":1,"partitions":1}},"action":{"op":"count","input":"a"}}`,
			"plan: datasets per plan: 4 is over the limit of 3"},
		{"records", `{"datasets":{"p":{"op":"parallelize","partitions":1,"records":["a","b","c"]}},"action":{"op":"count","input":"p"}}`,
			"plan: inline records per plan: 3 is over the limit of 2"},
		{"fn args", `{"datasets":{"r":{"op":"range","n":1,"partitions":1},"m":{"op":"map","input":"r","fn":{"name":"f","args":{"x":"0123456789"}}}},"action":{"op":"count","input":"m"}}`,
			`plan: dataset "m": function argument bytes: 18 is over the limit of 10`},
		{"pipe", `{"datasets":{"r":{"op":"range","n":1,"partitions":1},"m":{"op":"pipe","input":"r","command":"awk","args":["{print $1 $2 $3}"]}},"action":{"op":"count","input":"m"}}`,
			`plan: dataset "m": function argument bytes: 19 is over the limit of 10`},
	} {
		p, err := Parse([]byte(tc.plan))
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		_, _, err = compileSampled(p, Options{Limits: lim}, emptyBounds)
		var le *LimitError
		if !errors.As(err, &le) || err.Error() != tc.want {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
	// Within the limits, and without limits, the same plans compile.
	p, _ := Parse([]byte(`{"datasets":{"r":{"op":"range","n":1,"partitions":50},"k":{"op":"map","input":"r","fn":"pairWithOne"},"g":{"op":"groupByKey","input":"k","partitions":50}},"action":{"op":"count","input":"g"}}`))
	g, err := Compile(p, Options{Limits: lim})
	if err != nil {
		t.Fatal(err)
	}
	if n := g.Tasks(); n != 100 {
		t.Fatalf("Tasks() = %d, want 100", n)
	}
}
