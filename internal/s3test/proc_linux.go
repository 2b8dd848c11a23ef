//go:build linux

package s3test

import (
	"os/exec"
	"syscall"
)

// dieWithParent has the kernel kill the server if the test process dies
// before its cleanup runs (a panic, a test timeout, SIGKILL), so no server
// outlives its test. Pdeathsig fires when the thread that started the
// child exits; Go keeps its threads for the life of the process unless a
// goroutine exits while locked to one, which Start never does.
func dieWithParent(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
