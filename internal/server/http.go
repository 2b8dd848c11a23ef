package server

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/pprof"
	"strconv"
	"time"

	"github.com/baton-sched/baton/api"
	"github.com/baton-sched/baton/ui"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// httpHandler serves the JSON mirror of the API's read side:
//
//	GET /v1/status        the cluster as this node sees it
//	GET /v1/raft/peers    the Raft configuration with each peer's report
//	GET /v1/jobs          every retained job
//	GET /v1/jobs/{id}     one job with its stages (?results_limit=N&results_offset=M: a page of its results)
//	GET /v1/executors     the executors (with what each reports of itself)
//	GET /v1/stages/{id}   one stage with a page of its task attempts (?limit=N&offset=M; default the first 1,000)
//	GET /v1/leaders       the latest leader takeovers
//	GET /v1/cached        the persisted datasets and where they are kept
//	GET /metrics          Prometheus metrics
//	GET /ui/              the web UI
//
// Reads come from this node's replica; ?consistent=1 on the job reads
// makes them linearizable (served through the leader). Bodies are the API
// messages in protojson (snake_case names, zero values included).
func (s *Server) httpHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/status", s.httpCall(func(ctx context.Context, r *http.Request) (proto.Message, error) {
		return s.Status(ctx, &api.StatusRequest{})
	}))
	mux.HandleFunc("GET /v1/raft/peers", s.httpCall(func(ctx context.Context, r *http.Request) (proto.Message, error) {
		return s.ListPeers(ctx, &api.ListPeersRequest{})
	}))
	mux.HandleFunc("GET /v1/jobs", s.httpCall(func(ctx context.Context, r *http.Request) (proto.Message, error) {
		return s.listJobs(ctx, &api.ListJobsRequest{Linearizable: consistent(r)})
	}))
	mux.HandleFunc("GET /v1/jobs/{id}", s.httpCall(func(ctx context.Context, r *http.Request) (proto.Message, error) {
		id, err := strconv.ParseUint(r.PathValue("id"), 10, 64)
		if err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "job id %q is not a number", r.PathValue("id"))
		}
		return s.getJob(ctx, &api.GetJobRequest{JobId: id, Linearizable: consistent(r), ResultsOffset: queryInt(r, "results_offset"), ResultsLimit: queryInt(r, "results_limit")})
	}))
	mux.HandleFunc("GET /v1/executors", s.httpCall(func(ctx context.Context, r *http.Request) (proto.Message, error) {
		return s.listExecutors(ctx, &api.ListExecutorsRequest{})
	}))
	mux.HandleFunc("GET /v1/stages/{id}", s.httpCall(func(ctx context.Context, r *http.Request) (proto.Message, error) {
		id, err := strconv.ParseUint(r.PathValue("id"), 10, 64)
		if err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "stage id %q is not a number", r.PathValue("id"))
		}
		return s.GetStage(ctx, &api.GetStageRequest{StageId: id, TasksOffset: queryInt(r, "offset"), TasksLimit: queryInt(r, "limit")})
	}))
	mux.HandleFunc("GET /v1/leaders", s.httpCall(func(ctx context.Context, r *http.Request) (proto.Message, error) {
		return s.LeaderHistory(ctx, &api.LeaderHistoryRequest{})
	}))
	mux.HandleFunc("GET /v1/cached", s.httpCall(func(ctx context.Context, r *http.Request) (proto.Message, error) {
		return s.ListCached(ctx, &api.ListCachedRequest{})
	}))
	mux.Handle("GET /metrics", s.metrics.handler())
	mux.Handle("GET /ui/", ui.Handler())
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/ui/", http.StatusFound)
	})
	if s.cfg.Pprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeJSONError(w, http.StatusNotFound, "no such endpoint: "+r.URL.Path)
	})
	return mux
}

func consistent(r *http.Request) bool {
	v := r.URL.Query().Get("consistent")
	return v != "" && v != "0" && v != "false"
}

var jsonOpts = protojson.MarshalOptions{UseProtoNames: true, EmitUnpopulated: true, Indent: "  "}

func (s *Server) httpCall(fn func(ctx context.Context, r *http.Request) (proto.Message, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
		defer cancel()
		msg, err := fn(ctx, r)
		if err != nil {
			st, _ := status.FromError(rpcError(err))
			writeJSONError(w, httpStatus(st.Code()), st.Message())
			return
		}
		b, err := jsonOpts.Marshal(msg)
		if err != nil {
			writeJSONError(w, http.StatusInternalServerError, err.Error())
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(append(b, '\n'))
	}
}

func writeJSONError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(map[string]string{"error": msg})
}

func httpStatus(c codes.Code) int {
	switch c {
	case codes.NotFound:
		return http.StatusNotFound
	case codes.InvalidArgument:
		return http.StatusBadRequest
	case codes.FailedPrecondition:
		return http.StatusConflict
	case codes.Unavailable:
		return http.StatusServiceUnavailable
	case codes.DeadlineExceeded:
		return http.StatusGatewayTimeout
	}
	return http.StatusInternalServerError
}

// queryInt reads a non-negative integer query parameter (0 when absent or
// not a number).
func queryInt(r *http.Request, name string) int32 {
	n, err := strconv.ParseInt(r.URL.Query().Get(name), 10, 32)
	if err != nil || n < 0 {
		return 0
	}
	return int32(n)
}
