package plan

import (
	"strings"
	"testing"
)

// TestParseErrorsSayWhereAndWhat: bad JSON has a line and column, a
// wrong type names the dataset and field, an empty plan says so, a
// misspelt field gets a suggestion, and a key-value operator over values
// without keys is refused.
func TestParseErrorsSayWhereAndWhat(t *testing.T) {
	for _, tc := range []struct{ name, plan, want string }{
		{"empty", "  \n", "plan: the plan is empty"},
		{"syntax", "{\"datasets\": {\n  \"r\": {\"op\": \"range\",, \"n\": 3}}}", "plan: line 2, column 23: invalid character ','"},
		{"cut short", "{\"datasets\": {\"r\": {\"op\": \"range\"", "plan: line 1, column 34: the JSON ends early"},
		{"wrong type", "{\"datasets\": {\"lines\": {\"op\": \"range\", \"n\": 3, \"partitions\": \"2\"}}, \"action\": {\"op\": \"count\", \"input\": \"lines\"}}",
			`dataset "lines": field "partitions" must be a whole number, not a string`},
		{"did you mean", `{"datasets": {"r": {"op": "range", "n": 3, "partition": 2}}, "action": {"op": "count", "input": "r"}}`,
			`plan: dataset "r": unknown field "partition" (did you mean "partitions"?)`},
		{"action field", `{"datasets": {"r": {"op": "range", "n": 3, "partitions": 2}}, "action": {"op": "count", "inptu": "r"}}`,
			`plan: action: unknown field "inptu" (did you mean "input"?)`},
		{"reduceByKey over range", `{"datasets": {"r": {"op": "range", "n": 3, "partitions": 2}, "s": {"op": "reduceByKey", "input": "r", "fn": "sum"}}, "action": {"op": "collect", "input": "s"}}`,
			`dataset "s" (reduceByKey): its input "r" holds values without keys (range)`},
		{"countByKey over filtered text", `{"datasets": {"t": {"op": "textFile", "path": "/x/*"}, "f": {"op": "filter", "input": "t", "fn": "nonEmpty"}}, "action": {"op": "countByKey", "input": "f"}}`,
			`action (countByKey): its input "f" holds values without keys (textFile)`},
	} {
		_, err := Parse([]byte(tc.plan))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want %q", tc.name, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "Go struct") {
			t.Errorf("%s: Go internals in %v", tc.name, err)
		}
	}
	// Keyed input is fine, through a function that makes pairs.
	if _, err := Parse([]byte(`{"datasets": {"r": {"op": "range", "n": 3, "partitions": 2}, "k": {"op": "map", "input": "r", "fn": "pairWithOne"}, "s": {"op": "reduceByKey", "input": "k", "fn": "sum"}}, "action": {"op": "collect", "input": "s"}}`)); err != nil {
		t.Errorf("a keyed reduceByKey: %v", err)
	}
}
