package server

import (
	"fmt"
	"testing"

	"github.com/baton-sched/baton/dag"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// TestStateErrorsKeepTheirClass: a condition of the moment says "try
// later", never that the request was wrong (the live-task limit used to
// reach clients as InvalidArgument); a request naming what is not there
// is NotFound.
func TestStateErrorsKeepTheirClass(t *testing.T) {
	for err, want := range map[error]codes.Code{
		dag.ErrTooManyTasks: codes.ResourceExhausted,
		dag.ErrTooManyJobs:  codes.ResourceExhausted,
		dag.ErrTooLarge:     codes.InvalidArgument,
		dag.ErrUnknownStage: codes.NotFound,
		dag.ErrUnknownJob:   codes.NotFound,
		dag.ErrNotPersisted: codes.NotFound,
	} {
		if got := status.Code(rpcError(fmt.Errorf("%w: detail", err))); got != want {
			t.Errorf("%v: %v, want %v", err, got, want)
		}
	}
}
