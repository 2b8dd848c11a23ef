package grpcdial

import (
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Plain says in a few words why a gRPC call to another process failed at
// the transport ("connection refused", "it does not answer as a Baton
// API"), without gRPC's codes and descriptions, for people to read.
func Plain(err error) string {
	msg := status.Convert(err).Message()
	low := strings.ToLower(msg)
	switch {
	case strings.Contains(low, "connection refused"):
		return "connection refused"
	case strings.Contains(low, "no such host"), strings.Contains(low, "produced zero addresses"):
		return "unknown host"
	case strings.Contains(low, "server preface"), strings.Contains(low, "frame too large"),
		strings.Contains(low, "first record does not look like a tls handshake"), strings.Contains(low, "unexpected http status"),
		strings.Contains(low, "content-type"), strings.Contains(low, "malformed http response"), strings.Contains(low, "alpn"):
		return "it does not answer as a Baton API (an HTTP port? give schedd's -api-addr)"
	case strings.Contains(low, "x509:"), strings.Contains(low, "certificate"), strings.Contains(low, "tls:"):
		if i := strings.Index(msg, "tls: "); i >= 0 {
			return "TLS: " + strings.Trim(msg[i+5:], `"`)
		}
		if i := strings.Index(msg, "x509: "); i >= 0 {
			return "TLS: " + strings.Trim(msg[i:], `"`)
		}
		return "TLS handshake failed"
	case strings.Contains(low, "i/o timeout"), strings.Contains(low, "deadline"), status.Code(err) == codes.DeadlineExceeded:
		return "no answer"
	case strings.Contains(low, "network is unreachable"), strings.Contains(low, "no route to host"):
		return "network unreachable"
	case strings.Contains(low, "connection reset"), strings.Contains(low, "eof"):
		return "the connection was closed (not a Baton API, or the member is stopping)"
	}
	if i := strings.Index(msg, "desc = "); i >= 0 {
		msg = strings.Trim(msg[i+7:], `"`)
	}
	return msg
}
