// Package grpcdial holds the dial option every gRPC connection between
// Baton's processes shares: how quickly it reconnects.
package grpcdial

import (
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
)

// connectParams reconnect quickly to a process that comes back: a
// restarted member or executor is usable again within a second, not after
// gRPC's default backoff of up to two minutes.
var connectParams = grpc.ConnectParams{
	Backoff:           backoff.Config{BaseDelay: 50 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: time.Second},
	MinConnectTimeout: 2 * time.Second,
}

// ConnectParams is the dial option with Baton's reconnection backoff.
func ConnectParams() grpc.DialOption { return grpc.WithConnectParams(connectParams) }

// MaxMessageSize is the largest gRPC message Baton's processes send and
// receive on the connections between them (schedd's server and its
// forwarding, execd's session with the leader): 64 MiB. A message larger
// than this fails its stream with ResourceExhausted, so a sender that
// cannot be sure of a message's size must split it (the driver's launches)
// or refuse it with a clear message.
const MaxMessageSize = 64 << 20
