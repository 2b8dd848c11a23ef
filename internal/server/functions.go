package server

import (
	"fmt"
	"strings"

	"github.com/baton-sched/baton/dag"
	"github.com/baton-sched/baton/fsm"
	"github.com/baton-sched/baton/ops"
	"github.com/baton-sched/baton/plan"
)

// functions checks the functions a plan names at submission: a built-in
// by the registry (it fits the operator and accepts its arguments), any
// other by the live executors that report holding it (user functions,
// built into a user's execd; their kind and arguments are checked when a
// task builds them). A name nobody holds is refused with the names it
// could have meant.
type functions struct {
	builtin *ops.Registry
	fsm     *fsm.FSM
}

func (f *functions) CheckFunc(op string, fn plan.Func) error {
	if _, ok := f.builtin.Lookup(fn.Name); ok {
		return f.builtin.CheckFunc(op, fn)
	}
	held := false
	var names []string
	f.fsm.Read(func(s *dag.State) {
		for _, e := range s.Executors() {
			if !e.Alive {
				continue
			}
			for _, n := range e.Funcs {
				held = held || n == fn.Name
				names = append(names, n)
			}
		}
	})
	if held {
		return nil
	}
	msg := fmt.Sprintf("unknown function %q", fn.Name)
	if near := ops.Suggest(append(names, f.builtin.Names()...), fn.Name); len(near) > 0 {
		msg += fmt.Sprintf(" (did you mean %s?)", strings.Join(near, ", "))
	}
	return fmt.Errorf("%s: neither built in nor held by a live executor", msg)
}
