package api

import (
	"encoding/json"
	"fmt"

	"github.com/baton-sched/baton/plan"
)

// PlanToProto converts a plan to its wire form.
func PlanToProto(p *plan.Plan) *Plan {
	out := &Plan{Name: p.Name, Datasets: make(map[string]*Dataset, len(p.Datasets)), Action: &Action{
		Op: p.Action.Op, Input: p.Action.Input, Fn: funcToProto(p.Action.Fn), N: p.Action.N, Path: p.Action.Path,
	}}
	for name, d := range p.Datasets {
		if d == nil {
			out.Datasets[name] = nil
			continue
		}
		pd := &Dataset{
			Op: d.Op, Input: d.Input, Inputs: d.Inputs, Fn: funcToProto(d.Fn), Partitions: int32(d.Partitions),
			Path: d.Path, N: d.N, Ascending: d.Ascending, How: d.How, Command: d.Command, Args: d.Args, Env: d.Env, Persist: d.Persist,
		}
		for _, r := range d.Records {
			pd.Records = append(pd.Records, &Record{Key: r.Key, Value: r.Value, HasKey: r.HasKey})
		}
		out.Datasets[name] = pd
	}
	return out
}

// PlanFromProto converts a plan from its wire form. It checks only what
// the conversion needs (function arguments must be a JSON object); call
// Validate on the result.
func PlanFromProto(p *Plan) (*plan.Plan, error) {
	if p == nil {
		return nil, fmt.Errorf("api: no plan")
	}
	out := &plan.Plan{Name: p.Name, Datasets: make(map[string]*plan.Dataset, len(p.Datasets))}
	for name, d := range p.Datasets {
		if d == nil {
			out.Datasets[name] = nil
			continue
		}
		fn, err := funcFromProto(d.Fn)
		if err != nil {
			return nil, fmt.Errorf("api: dataset %q: %w", name, err)
		}
		pd := &plan.Dataset{
			Op: d.Op, Input: d.Input, Inputs: d.Inputs, Fn: fn, Partitions: int(d.Partitions),
			Path: d.Path, N: d.N, Ascending: d.Ascending, How: d.How, Command: d.Command, Args: d.Args, Env: d.Env, Persist: d.Persist,
		}
		for _, r := range d.Records {
			pd.Records = append(pd.Records, plan.Record{Key: r.Key, Value: r.Value, HasKey: r.HasKey})
		}
		out.Datasets[name] = pd
	}
	if a := p.Action; a != nil {
		fn, err := funcFromProto(a.Fn)
		if err != nil {
			return nil, fmt.Errorf("api: action: %w", err)
		}
		out.Action = plan.Action{Op: a.Op, Input: a.Input, Fn: fn, N: a.N, Path: a.Path}
	}
	return out, nil
}

func funcToProto(f *plan.Func) *Func {
	if f == nil {
		return nil
	}
	return &Func{Name: f.Name, ArgsJson: string(f.Args)}
}

func funcFromProto(f *Func) (*plan.Func, error) {
	if f == nil {
		return nil, nil
	}
	out := &plan.Func{}
	// Reuse plan's JSON form so arguments are checked and canonicalised
	// exactly as in a JSON plan.
	raw, err := json.Marshal(map[string]any{"name": f.Name, "args": json.RawMessage(orNull(f.ArgsJson))})
	if err != nil {
		return nil, fmt.Errorf("fn %q: args must be a JSON object", f.Name)
	}
	if err := out.UnmarshalJSON(raw); err != nil {
		return nil, fmt.Errorf("fn %q: %w", f.Name, err)
	}
	return out, nil
}

func orNull(s string) string {
	if s == "" {
		return "null"
	}
	return s
}
