// Package drill runs failover drills against real processes: a local
// Baton cluster (three schedd, executors) runs jobs with known answers
// while a nemesis SIGKILLs the leader, a follower or an executor at a
// chosen moment, restarts it, and the drill checks every answer exactly,
// measures how long takeovers take and counts the tasks that ran again.
package drill
