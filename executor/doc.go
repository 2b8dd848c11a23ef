// Package executor is Baton's executor runtime (execd): it keeps a session
// with the quorum's leader, runs the tasks it is given in a pool of slots,
// stores map outputs and large results in its block store (Pebble) and
// serves them to reducers and the scheduler, and reports every task's end.
//
// Across a leader change tasks keep running, and their final status
// updates are kept until a leader acknowledges them: the executor finds the
// new leader through any member, says hello again (listing the attempts it
// runs), and resends what is unacknowledged. Orders carry the leader's
// term; orders from a term lower than the highest seen are refused
// (fencing).
package executor
