// Package ui is Baton's web UI: a few static files embedded in the binary
// (no CDN, no third-party front-end code) that every schedd serves under
// /ui/ on its HTTP address. The pages read the node's JSON API (/v1/...)
// and refresh themselves every second: Jobs, a Job with its stage DAG,
// Stages with their task attempts, Executors, the Quorum, and the history
// of leader takeovers. A follower shows its replica of the state and links
// to the leader's UI.
package ui
