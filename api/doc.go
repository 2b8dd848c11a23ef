// Package api holds Baton's protobuf service and message definitions
// (baton.proto) and their generated Go code, which is committed and kept
// fresh by `make generate` (a check in `make test` fails when it is stale).
//
// Three services: Scheduler for clients, Operator for operators, Executors
// for executors. Plans travel as the Plan message, a field-for-field mirror
// of the JSON contract; PlanToProto and PlanFromProto convert.
package api
