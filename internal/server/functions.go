package server

import (
	"fmt"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

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

// checkPipes refuses a plan whose pipe runs a program no live executor
// allows (execd -pipe-allow): its tasks could run nowhere.
func (sb *submitter) checkPipes(p *plan.Plan) error {
	var cmds []string
	for _, name := range p.Names() {
		if d := p.Datasets[name]; d != nil && d.Op == "pipe" {
			cmds = append(cmds, d.Command)
		}
	}
	if len(cmds) == 0 {
		return nil
	}
	allowed := map[string]bool{}
	sb.state.Read(func(st *dag.State) {
		for _, e := range st.Executors() {
			if !e.Alive {
				continue
			}
			for _, n := range e.Funcs {
				if strings.HasPrefix(n, ops.PipePrefix) {
					allowed[strings.TrimPrefix(n, ops.PipePrefix)] = true
				}
			}
		}
	})
	for _, c := range cmds {
		if !allowed[c] && !allowed["*"] {
			return status.Errorf(codes.FailedPrecondition, "server: pipe: program %q is not allowed on this cluster: no live executor allows it (execd -pipe-allow)", c)
		}
	}
	return nil
}
