SHELL := /bin/bash
# Baton's build. `make help` lists the targets.
#
# Everything beyond Go itself is installed by the targets that need it:
# protoc from Debian's protobuf-compiler, protoc-gen-go from the Go module
# proxy (into bin/tools, at the version go.mod pins).

GO        ?= go
PKGS      := ./...
TOOLS     := $(CURDIR)/bin/tools
PROTOS    := fsm/fsmpb/fsm.proto
GRPC_PROTOS := api/baton.proto
PROTOC_GEN_GO_VERSION := $(shell $(GO) list -m -f '{{.Version}}' google.golang.org/protobuf)
PROTOC_GEN_GO_GRPC_VERSION := v1.6.2
GO_OPT    := --go_opt=module=github.com/baton-sched/baton
GRPC_OPT  := --go-grpc_opt=module=github.com/baton-sched/baton
SUDO      := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.DEFAULT_GOAL := help

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / {printf "  make %-16s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: demo
demo: ## Run the demo: a local quorum and executors lose the leader mid-job, three times, and finish exactly.
	$(GO) run ./internal/cmd/demo

.PHONY: build
build: ## Build every package and the binaries into bin/.
	$(GO) build $(PKGS)
	@if ls cmd/*/main.go >/dev/null 2>&1; then mkdir -p bin && $(GO) build -o bin/ ./cmd/...; fi

.PHONY: test
test: check-generate ## Run the whole test suite (vet, generated-code check, tests, a short fuzz of each target).
	$(GO) vet $(PKGS)
	$(GO) test -count=1 $(PKGS)
	@$(MAKE) --no-print-directory fuzz

# Every fuzz target: package and name. FUZZTIME is a count of inputs
# (Nx), not a duration: a duration races Go's fuzz coordinator at its
# deadline on a loaded machine and fails with a bare "context deadline
# exceeded" (golang/go#75804). `make fuzz FUZZTIME=2000000x` fuzzes longer.
FUZZ_TARGETS := ./fsm:FuzzPlanToApply ./fsm:FuzzDecodeEntry ./fsm:FuzzRestore
FUZZTIME ?= 20000x

.PHONY: fuzz
fuzz: ## Fuzz each target for FUZZTIME inputs (default 20000x, about 10s each) and print how long each took.
	@set -e; for t in $(FUZZ_TARGETS); do pkg=$${t%%:*}; name=$${t##*:}; start=$$(date +%s); \
		out=$$($(GO) test -run XXX -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) -fuzzminimizetime 50x $$pkg 2>&1) || { echo "$$out"; exit 1; }; \
		echo "fuzz $$pkg $$name: $$(echo "$$out" | grep -o 'execs: [0-9]*' | tail -1 | cut -d' ' -f2) inputs in $$(( $$(date +%s) - start ))s, no failure"; done

.PHONY: test-ui
test-ui: chromium ## Drive the web UI in headless Chromium against a local cluster; screenshots go to test-output/ui/.
	BATON_UI_TEST=1 BATON_UI_SCREENSHOTS=$(CURDIR)/test-output/ui $(GO) test -count=1 -v ./uitest

.PHONY: chromium
chromium: ## Install Debian's chromium for the browser test, if missing.
	@command -v chromium >/dev/null || { echo "installing chromium (Debian package)"; \
		$(SUDO) apt-get install -y -qq chromium >/dev/null 2>&1 || \
		{ $(SUDO) apt-get update -qq >/dev/null && $(SUDO) apt-get install -y -qq chromium >/dev/null; }; }

.PHONY: testrace
testrace: ## Run the tests with the race detector.
	$(GO) test -race -count=1 $(PKGS)

CORE_PKGS := ./dag ./fsm ./raftnet ./propose ./driver ./executor ./blockstore ./client

.PHONY: test-race-core
test-race-core: ## Run the core packages' tests with the race detector (CI runs this).
	$(GO) test -race -count=1 $(CORE_PKGS)

HOGS ?= 4

.PHONY: test-load
test-load: ## Run the whole suite while HOGS busy loops (default 4) keep both cores busy, as a loaded CI machine would.
	@set -e; pids=""; trap 'kill $$pids 2>/dev/null' EXIT; \
	for i in $$(seq $(HOGS)); do sh -c 'while :; do :; done' & pids="$$pids $$!"; done; \
	echo "test-load: $(HOGS) busy loops running ($$pids); load average $$(cut -d' ' -f1-3 /proc/loadavg)"; \
	$(MAKE) --no-print-directory test; \
	echo "test-load: passed under load; load average $$(cut -d' ' -f1-3 /proc/loadavg)"

.PHONY: lint
lint: check-generate ## gofmt, go vet and the generated-code check.
	@out="$$(gofmt -l $$(git ls-files '*.go'))"; if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)

.PHONY: dask
dask: ## Install Debian's python3-distributed (Dask), the baseline of the empty-task benchmark, if missing.
	@/usr/bin/python3 -c 'import distributed' 2>/dev/null || { echo "installing python3-distributed (Debian package)"; \
		$(SUDO) apt-get install -y -qq python3-distributed >/dev/null 2>&1 || \
		{ $(SUDO) apt-get update -qq >/dev/null && $(SUDO) apt-get install -y -qq python3-distributed >/dev/null; }; }

.PHONY: bench
bench: dask ## Run the benchmarks that back the figures in the README, each beside its baseline.
	@echo "== dag: Apply over a 10,000-task two-stage job's life (target >= 1,000,000 TaskEnded/s)"
	$(GO) test -run XXX -bench . -benchtime 2s ./dag
	@echo "== fsm: decode + apply, 1 (baseline), 64 and 1024 commands per log entry"
	$(GO) test -run XXX -bench . -benchtime 2s ./fsm
	@echo "== propose: committed commands/s through a 3-node quorum, fsync on: one at a time (baseline) vs batched (target >= 10,000/s)"
	$(GO) test -run XXX -bench QuorumThroughput -benchtime 3s ./propose
	@echo "== quorum: leader SIGKILL -> new leader, 3 schedd processes, 10 trials (target median <= 500ms)"
	$(GO) run ./internal/cmd/quorumbench -trials 10
	@echo "== blockstore: map output write paths, synced batch vs ingested sstable"
	$(GO) test -run XXX -bench PutMapOutput -benchtime 2s ./blockstore
	@echo "== jobs on 3 schedd + 2 execd: empty-task throughput (beside group commit off, schedd -dev and Dask distributed), 256 MiB word count, one-task latency"
	$(GO) run ./internal/cmd/jobbench
	@echo "== sort (TeraSort-style) of 1 GiB: single-process Go sort (baseline) vs 3 schedd + 2 execd"
	$(GO) run ./internal/cmd/sortbench -mb 1024
	@echo "== data bigger than memory: sortByKey, groupByKey and a skewed sortByKey over 4 GiB on 2 executors with -memory 256MiB, beside the same jobs over 1 GiB with no budget (target: exact answers, each executor's peak RSS <= 512 MiB)"
	$(GO) run ./internal/cmd/membench -gb 4 -baseline-gb 1 -memory 256MiB -rss-limit-mib 512
	@echo "== failover drill: 30 rounds, the leader SIGKILLed at a random moment (target: takeover median <= 600ms, max <= 1.5s, 30/30 exact, 0 re-runs)"
	$(GO) build -o bin/ ./cmd/... && bin/batonctl drill -rounds 30 -kill leader -at random -seed 1
	@echo "== scheduler at scale: real fsm, dag and driver on Raft (bbolt), 1,000 simulated executors x 16 slots, a 1,000,000-task job then a stream of small jobs (target >= 50,000 tasks/s, snapshot take and restore <= 2s, heap <= 2 GiB)"
	$(GO) run ./internal/cmd/simbench
	@echo "== load: 10 min of jobs under 10 hogs (cpu, io, alloc), 200 execd (lease 100ms baseline vs current), idle takeover (baseline vs current) (target: <= 2 leader changes; takeover median <= 600ms, max <= 1.5s)"
	$(GO) run ./internal/cmd/loadbench

.PHONY: docs
docs: ## Regenerate docs/functions.md from the function registry.
	$(GO) run ./internal/cmd/funcdoc -o docs/functions.md

.PHONY: tools
tools: $(TOOLS)/protoc-gen-go $(TOOLS)/protoc-gen-go-grpc ## Install protoc, protoc-gen-go and protoc-gen-go-grpc.
	@command -v protoc >/dev/null || { echo "installing protoc (Debian protobuf-compiler)"; \
		$(SUDO) apt-get install -y -qq protobuf-compiler >/dev/null 2>&1 || \
		{ $(SUDO) apt-get update -qq >/dev/null && $(SUDO) apt-get install -y -qq protobuf-compiler >/dev/null; }; }

$(TOOLS)/protoc-gen-go: go.mod
	GOBIN=$(TOOLS) $(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION)
	@touch $@

$(TOOLS)/protoc-gen-go-grpc: Makefile
	GOBIN=$(TOOLS) $(GO) install google.golang.org/grpc/cmd/protoc-gen-go-grpc@$(PROTOC_GEN_GO_GRPC_VERSION)
	@touch $@

.PHONY: generate
generate: tools ## Regenerate the committed protobuf code.
	PATH="$(TOOLS):$$PATH" protoc --go_out=. $(GO_OPT) $(PROTOS)
	PATH="$(TOOLS):$$PATH" protoc --go_out=. --go-grpc_out=. $(GO_OPT) $(GRPC_OPT) $(GRPC_PROTOS)

.PHONY: check-generate
check-generate: tools ## Fail if the committed generated code is stale.
	@tmp=$$(mktemp -d); trap 'rm -rf $$tmp' EXIT; \
	PATH="$(TOOLS):$$PATH" protoc --go_out=$$tmp $(GO_OPT) $(PROTOS) || exit 1; \
	PATH="$(TOOLS):$$PATH" protoc --go_out=$$tmp --go-grpc_out=$$tmp $(GO_OPT) $(GRPC_OPT) $(GRPC_PROTOS) || exit 1; \
	stale=0; for f in $$(cd $$tmp && find . -name '*.pb.go'); do \
		if ! diff -q <(grep -v '^// .*protoc ' $$tmp/$$f) <(grep -v '^// .*protoc ' $$f) >/dev/null 2>&1; then \
			echo "stale generated code: $$f (run make generate)"; stale=1; fi; \
	done; exit $$stale

.PHONY: clean
clean: ## Remove build output.
	rm -rf bin
