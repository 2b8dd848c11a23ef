package ops

import (
	"slices"
	"sort"
)

// OpsFor returns the operators (and actions, such as reduce) that accept
// functions of kind k, sorted. It reads the table CheckFunc checks plans
// against, for the generated functions reference (docs/functions.md).
func OpsFor(k Kind) []string {
	var names []string
	for op, kinds := range opKinds {
		if slices.Contains(kinds, k) {
			names = append(names, op)
		}
	}
	sort.Strings(names)
	return names
}
