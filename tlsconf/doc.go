// Package tlsconf is Baton's mutual TLS: the cluster's certificate
// authority, certificates that name their holder's role (server,
// executor or client) and name, and the tls.Configs every listener and
// dialer uses (Raft, the gRPC API, executor sessions, the block service,
// HTTP).
//
// A certificate's role is a DNS name "<role>.baton" in its subject
// alternative names, its holder's name is its common name (and the DNS
// name "<name>.<role>.baton"): a client dialing a server checks for
// "server.baton", whatever address it dialed, as Nomad's
// "server.<region>.nomad". Certificates are read again when their files
// change, so they can be rotated without a restart.
package tlsconf
