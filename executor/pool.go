package executor

import (
	"context"

	"github.com/baton-sched/baton/api"
	"github.com/baton-sched/baton/plan"
)

// The executor runs its tasks on a pool of Cores workers that take
// launched tasks from a queue in launch order, rather than a goroutine per
// task waiting for a slot: a stage of very short tasks has hundreds
// queued per slot (the leader's -queued-work), and a goroutine each, with
// its stack grown anew for every task, was a fifth of the executor's CPU.
// Workers start as tasks come, up to Cores, and stay until the executor
// closes. A queued task that is killed ends at once (killQueuedLocked).

// queued is a launched task waiting for a worker.
type queued struct {
	ctx context.Context
	t   *task
	l   *api.TaskLaunch
	g   *plan.Graph
}

// enqueueLocked queues a launched task and wakes or starts a worker.
// e.mu is held; the task is in e.running and counted in e.wg.
func (e *Executor) enqueueLocked(q queued) {
	e.queue = append(e.queue, q)
	if e.idle > 0 {
		// idle counts the workers waiting and not yet woken: each
		// signal wakes one, so two tasks queued at once wake two.
		e.idle--
		e.work.Signal()
		return
	}
	if e.workers < e.opts.Cores {
		e.workers++
		e.wg.Add(1)
		go e.worker()
	}
}

// worker runs queued tasks until the executor closes.
func (e *Executor) worker() {
	defer e.wg.Done()
	e.mu.Lock()
	defer e.mu.Unlock()
	for {
		for len(e.queue) == 0 && !e.closing {
			e.idle++ // the waker takes it back
			e.work.Wait()
		}
		if len(e.queue) == 0 {
			e.workers--
			return
		}
		q := e.queue[0]
		e.queue[0] = queued{}
		e.queue = e.queue[1:]
		if len(e.queue) == 0 {
			e.queue = e.queue[:0:0] // let the backing array go
		}
		q.t.begun = true
		e.mu.Unlock()
		e.run(q.ctx, q.t, q.l, q.g)
		e.wg.Done() // the task's
		e.mu.Lock()
	}
}

// killQueuedLocked ends a task still waiting for a worker: it is taken
// off the queue and reported killed, so its slot on the leader is free at
// once, not when a worker reaches it. e.mu is held.
func (e *Executor) killQueuedLocked(t *task) {
	for i := range e.queue {
		if e.queue[i].t == t {
			e.queue = append(e.queue[:i], e.queue[i+1:]...)
			t.cancel()
			e.finishLocked(&api.TaskStatus{Id: t.id, State: api.TaskState_TASK_STATE_KILLED, Message: "killed before it started"})
			e.wg.Done()
			return
		}
	}
}

// wakeWorkersLocked wakes every idle worker (the executor is closing).
func (e *Executor) wakeWorkersLocked() {
	e.idle = 0
	e.work.Broadcast()
}
