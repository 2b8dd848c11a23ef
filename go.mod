module github.com/baton-sched/baton

go 1.26.0

// Raft: hashicorp/raft v1.7.3 with raft-boltdb/v2 v2.3.1 (bbolt). We chose
// v1.7.3 over v1.8.0 because it builds with raft-boltdb/v2 as released;
// v1.8.0 needs github.com/hashicorp/go-metrics pinned back to v0.5.4 with a
// replace directive, which every downstream build would have to repeat.
// Nothing Baton uses is new in v1.8.0. bbolt is raised from raft-boltdb's
// v1.3.5 to v1.3.11 for the unsafe-pointer fixes made since (flagged by
// the race detector's checkptr).
require (
	github.com/cockroachdb/datadriven v1.0.3
	github.com/hashicorp/go-hclog v1.6.2
	github.com/hashicorp/raft v1.7.3
	github.com/hashicorp/raft-boltdb/v2 v2.3.1
	google.golang.org/protobuf v1.36.12
)

require google.golang.org/grpc v1.85.0

require (
	github.com/armon/go-metrics v0.4.1 // indirect
	github.com/boltdb/bolt v1.3.1 // indirect
	github.com/fatih/color v1.13.0 // indirect
	github.com/hashicorp/go-immutable-radix v1.0.0 // indirect
	github.com/hashicorp/go-metrics v0.5.4 // indirect
	github.com/hashicorp/go-msgpack/v2 v2.1.2 // indirect
	github.com/hashicorp/golang-lru v0.5.0 // indirect
	github.com/mattn/go-colorable v0.1.13 // indirect
	github.com/mattn/go-isatty v0.0.17 // indirect
	github.com/pmezard/go-difflib v1.0.0 // indirect
	github.com/stretchr/testify v1.9.0 // indirect
	go.etcd.io/bbolt v1.3.11 // indirect
	golang.org/x/net v0.60.0 // indirect
	golang.org/x/sys v0.48.0 // indirect
	golang.org/x/text v0.42.0 // indirect
	google.golang.org/genproto/googleapis/rpc v0.0.0-20260817212433-ac3dfec99bb1 // indirect
)
