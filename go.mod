module github.com/baton-sched/baton

go 1.26
