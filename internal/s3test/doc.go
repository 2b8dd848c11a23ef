// Package s3test starts a real S3-compatible server for tests: versitygw
// (github.com/versity/versitygw, Apache-2.0) with its posix backend, which
// serves a directory, as its own OS process on 127.0.0.1.
//
//	srv := s3test.Start(t)        // a server with srv.Bucket created
//	cl := srv.Client(t)           // a minio-go client for it
//	cmd.Env = append(cmd.Env, srv.Env()...) // AWS_* variables for a child
//
// Start picks a free loopback port and a data directory under t.TempDir,
// waits until the server answers a signed request, creates a bucket, and
// stops the process (and waits for it) in t.Cleanup.
//
// The server binary is built from the Go module proxy with
// `go install github.com/versity/versitygw/cmd/versitygw@VersitygwVersion`
// on first use and kept in a cache directory beside the Go build cache
// (`$(go env GOCACHE)/../baton-s3server/`), so a machine builds it once: the
// build runs under a file lock and lands under a temporary name that is
// renamed into place, so test processes starting at once neither build it
// twice nor see half a binary. The first build takes minutes; later runs
// find it at once. The environment variable BATON_VERSITYGW, when set,
// names a versitygw binary to use instead.
//
// Why versitygw and not SeaweedFS: `go install` of versitygw works as
// released (its go.mod asks for go 1.25 and about 80 modules), while
// SeaweedFS's module carries a replace directive, so `go install
// .../weed@version` refuses it, and it asks for go 1.26.6 and about 500
// modules. versitygw's posix backend keeps each object as a plain file under
// the data directory, which a test can look at.
//
// A test is skipped only when the binary cannot be built at all here: no
// go command, or no way to the module proxy (GOPROXY=off, or the download
// fails on the network). Any other failure fails the test.
package s3test
