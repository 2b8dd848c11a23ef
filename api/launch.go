package api

import (
	"bytes"
	"errors"

	"google.golang.org/protobuf/proto"
)

// PackLaunch packs launches into task sets: consecutive launches of one
// stage attempt that share everything but their task's id, partition,
// attempt, ticket, speculative flag and reducer range go in one
// TaskSetLaunch, what they share once (for a reduce stage that is every
// map output's location, which one launch per task repeated). The
// first launch's graph, if it carries one, rides in its set's template.
// ExpandLaunch gives the launches back, equal to these.
func PackLaunch(tasks []*TaskLaunch) *Launch {
	out := &Launch{}
	var set *TaskSetLaunch
	for _, t := range tasks {
		if set == nil || !sameTemplate(set.Template, t) {
			id := t.GetId()
			tmpl := &TaskLaunch{Id: &TaskID{Job: id.GetJob(), Stage: id.GetStage(), StageAttempt: id.GetStageAttempt(), Epoch: id.GetEpoch()},
				Term: t.Term, Graph: t.Graph, Node: t.Node, Map: t.Map, Shuffle: t.Shuffle, Inputs: t.Inputs, MaxDirectResultSize: t.MaxDirectResultSize,
				MaxResultSize: t.MaxResultSize, GraphKey: t.GraphKey, ShuffleKey: t.ShuffleKey, InputGrants: t.InputGrants, CacheGenerations: t.CacheGenerations}
			set = &TaskSetLaunch{Template: tmpl}
			out.Sets = append(out.Sets, set)
		}
		id := t.GetId()
		set.Tasks = append(set.Tasks, &SetTask{Task: id.GetTask(), Partition: id.GetPartition(), Attempt: id.GetAttempt(), Ticket: id.GetTicket(),
			Speculative: id.GetSpeculative(), ReduceStart: t.ReduceStart, ReduceEnd: t.ReduceEnd})
	}
	return out
}

// sameTemplate reports whether t shares everything a set's template
// holds (a graph only the template carries is no difference: it is
// sent once per session and kept by key).
func sameTemplate(tmpl, t *TaskLaunch) bool {
	a, b := tmpl.GetId(), t.GetId()
	if a.GetJob() != b.GetJob() || a.GetStage() != b.GetStage() || a.GetStageAttempt() != b.GetStageAttempt() || a.GetEpoch() != b.GetEpoch() {
		return false
	}
	if tmpl.Term != t.Term || tmpl.GraphKey != t.GraphKey || tmpl.Node != t.Node || tmpl.Map != t.Map || tmpl.Shuffle != t.Shuffle ||
		tmpl.MaxDirectResultSize != t.MaxDirectResultSize || tmpl.MaxResultSize != t.MaxResultSize || tmpl.ShuffleKey != t.ShuffleKey ||
		(len(t.Graph) > 0 && !bytes.Equal(tmpl.Graph, t.Graph)) {
		return false
	}
	if len(tmpl.Inputs) != len(t.Inputs) || len(tmpl.InputGrants) != len(t.InputGrants) || len(tmpl.CacheGenerations) != len(t.CacheGenerations) {
		return false
	}
	for i := range t.Inputs {
		if tmpl.Inputs[i] != t.Inputs[i] && !proto.Equal(tmpl.Inputs[i], t.Inputs[i]) {
			return false
		}
	}
	for i := range t.InputGrants {
		if !bytes.Equal(tmpl.InputGrants[i], t.InputGrants[i]) {
			return false
		}
	}
	for k, v := range t.CacheGenerations {
		if w, ok := tmpl.CacheGenerations[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// ErrBadTaskSet is a TaskSetLaunch without a template.
var ErrBadTaskSet = errors.New("api: a task set launch without a template")

// ExpandLaunch returns a Launch's launches: its tasks, then each set's,
// each set's template with the task's own fields. The launches of a set
// share the template's inputs, grants and cache generations (read only).
func ExpandLaunch(l *Launch) ([]*TaskLaunch, error) {
	n := len(l.GetTasks())
	for _, s := range l.GetSets() {
		if s.GetTemplate() == nil {
			return nil, ErrBadTaskSet
		}
		n += len(s.Tasks)
	}
	out := make([]*TaskLaunch, 0, n)
	out = append(out, l.GetTasks()...)
	for _, s := range l.GetSets() {
		tm := s.Template
		tid := tm.GetId()
		for i, st := range s.Tasks {
			t := &TaskLaunch{
				Id: &TaskID{Task: st.Task, Job: tid.GetJob(), Stage: tid.GetStage(), StageAttempt: tid.GetStageAttempt(), Partition: st.Partition,
					Attempt: st.Attempt, Epoch: tid.GetEpoch(), Ticket: st.Ticket, Speculative: st.Speculative},
				Term: tm.Term, Node: tm.Node, Map: tm.Map, Shuffle: tm.Shuffle, Inputs: tm.Inputs, MaxDirectResultSize: tm.MaxDirectResultSize,
				MaxResultSize: tm.MaxResultSize, GraphKey: tm.GraphKey, ShuffleKey: tm.ShuffleKey, InputGrants: tm.InputGrants,
				ReduceStart: st.ReduceStart, ReduceEnd: st.ReduceEnd, CacheGenerations: tm.CacheGenerations,
			}
			if i == 0 {
				t.Graph = tm.Graph
			}
			out = append(out, t)
		}
	}
	return out, nil
}
