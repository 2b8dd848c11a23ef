package driver

import "time"

// exclusions keep tasks off executors they failed on (Spark's
// excludeOnFailure), at three levels:
//
//   - a task (a partition of a stage attempt) does not run again on an
//     executor it failed on (spark.excludeOnFailure.task.
//     maxTaskAttemptsPerExecutor = 1);
//   - an executor on which MaxFailuresPerExecutor tasks of a stage attempt
//     failed gets no more of its tasks (the stage level);
//   - an executor on which MaxFailuresPerExecutor tasks failed that then
//     succeeded elsewhere (the failure was the executor's, not the
//     task's) gets no task for ExcludeTimeout (the application level).
//
// Only exceptions count (not fetch failures, kills or lost executors).
// A task all of whose possible executors are excluded runs anyway (see
// placer.eligible). Exclusions are the leader's volatile knowledge: a new
// leader starts without them. l.mu guards them.
type exclusions struct {
	max     int // failures that exclude; 0: exclusion off
	timeout time.Duration
	task    map[partKey]map[string]bool
	stage   map[stageKey]map[string]int
	app     map[string]int
	until   map[string]time.Time
}

func (x *exclusions) empty() bool {
	return x.max == 0 || (len(x.task) == 0 && len(x.until) == 0)
}

// failed records a task's exception on an executor.
func (x *exclusions) failed(key partKey, exec string) {
	if x.max == 0 {
		return
	}
	if x.task == nil {
		x.task, x.stage, x.app, x.until = map[partKey]map[string]bool{}, map[stageKey]map[string]int{}, map[string]int{}, map[string]time.Time{}
	}
	if x.task[key] == nil {
		x.task[key] = map[string]bool{}
	}
	x.task[key][exec] = true
	if x.stage[key.set()] == nil {
		x.stage[key.set()] = map[string]int{}
	}
	x.stage[key.set()][exec]++
}

// succeeded records a task's success: the executors it failed on before
// count toward the application level. It returns the executors newly
// excluded.
func (x *exclusions) succeeded(key partKey, now time.Time) []string {
	failed := x.task[key]
	if failed == nil {
		return nil
	}
	delete(x.task, key)
	var newly []string
	for exec := range failed {
		x.app[exec]++
		if x.app[exec] >= x.max {
			delete(x.app, exec)
			x.until[exec] = now.Add(x.timeout)
			newly = append(newly, exec)
		}
	}
	return newly
}

// excluded reports whether a task should not run on an executor.
func (x *exclusions) excluded(key partKey, exec string, now time.Time) bool {
	if x.max == 0 || x.task == nil {
		return false
	}
	if until, ok := x.until[exec]; ok {
		if now.Before(until) {
			return true
		}
		delete(x.until, exec)
	}
	return x.task[key][exec] || x.stage[key.set()][exec] >= x.max
}

// forget drops what is known about stage attempts no longer running.
func (x *exclusions) forget(active func(stageKey) bool) {
	for k := range x.stage {
		if !active(k) {
			delete(x.stage, k)
		}
	}
	for k := range x.task {
		if !active(k.set()) {
			delete(x.task, k)
		}
	}
}
