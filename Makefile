# vpa-graceful-drain: build, run and test the function.
#
#   make run     serve the function locally (func-go's http runtime; dry-run without a cluster)
#   make test    gofmt, vet and lint; unit tests (with -race) + integration + end-to-end tests
#                against a real kube-apiserver, etcd, kube-controller-manager and the real Knative
#                ApiServerSource adapter (built once into bin/)
#   make unit    the fast loop: unit tests only, no real components (what `go test ./...` runs)
#   make fmt     format every Go file (gofmt -w)
#   make lint    staticcheck (pinned in test/tools/lint, built once into bin/; staticcheck.conf)
#   make verify  check, changing nothing: gofmt, go mod tidy and lint (make test checks gofmt and lint)
#   make demo    a local control plane, adapter and function; evicts a pod, prints a timeline
#   make bench   the performance table: 8 rows (speed, load, scale, memory) against their targets
#                and floors measured in the same run; JSON in .bench/
#   make fuzz    each fuzz target for FUZZTIME (default 30s), one after another
#   make soak    DURATION (default 30m) of pod churn through the real adapter; watches the
#                function's memory, threads, goroutines and every drain (not in make test or CI)

SHELL        := /usr/bin/env bash
GO           ?= go
BIN          := $(CURDIR)/bin
LISTEN_ADDRESS ?= 127.0.0.1:8080
EVENT        ?= test/events/managed-pod-added.http
FUZZTIME     ?= 30s
DURATION     ?= 30m
URL          ?= http://$(LISTEN_ADDRESS)/

KUBE_VERSION := v1.37.2
KUBE_LDFLAGS := -s -w \
	-X k8s.io/component-base/version.gitVersion=$(KUBE_VERSION) \
	-X k8s.io/component-base/version.gitMajor=1 \
	-X k8s.io/component-base/version.gitMinor=37
REAL_BINARIES := $(BIN)/etcd $(BIN)/kube-apiserver $(BIN)/kube-controller-manager $(BIN)/apiserver_receive_adapter $(BIN)/vpa-admission-controller

# The real-cluster tests find the binaries here (envtest's convention).
export KUBEBUILDER_ASSETS := $(BIN)

# Build tags. The real-cluster test packages build only with a tag, so a plain `go test ./...`
# (a fresh clone, no bin/) runs the unit tests alone; make test, vet and lint use both tags.
#   integration  the test process itself against a real etcd and kube-apiserver, nothing else
#                started: test/integration, test/knative (dryrun_test.go), test/plugin
#   e2e          the built function binary served by func-go, with the real ApiServerSource
#                adapter and/or kube-controller-manager (test/e2e, test/faults, test/workloads),
#                or alone under 70,000 events with a 1 s latency bound (test/load: no API server,
#                but it builds the function and needs a quiet machine)
# The packages without tests (test/cluster, test/soak, test/demo, test/load's generator) are
# not tagged: go build and go vet check them everywhere.
TAGS := integration e2e

# Every Go file of the module (tracked or new, not ignored).
GO_FILES = $$(git ls-files --cached --others --exclude-standard '*.go' 2>/dev/null || find . -name '*.go' -not -path './bin/*')

.PHONY: all fmt fmt-check tidy-check lint verify vet build run invoke release-finalizers unit test integration e2e bench bench-go fuzz demo soak binaries clean install-plugin

all: fmt vet build unit

# Formats every Go file in place.
fmt:
	gofmt -w $(GO_FILES)

# Fails, naming them, if any Go file is not gofmt-formatted (make fmt formats them).
fmt-check:
	@out=$$(gofmt -l $(GO_FILES)); \
	if [ -n "$$out" ]; then echo "gofmt needed on (make fmt):"; echo "$$out"; exit 1; fi

# Fails, printing the diff, if go mod tidy would change go.mod or go.sum.
tidy-check:
	$(GO) mod tidy -diff

vet:
	$(GO) vet -tags '$(TAGS)' ./...

# staticcheck on every package, the tagged tests included; checks in staticcheck.conf.
lint: $(BIN)/staticcheck
	$(BIN)/staticcheck -tags '$(TAGS)' ./...

# Checks only, changes nothing (CI-style): formatting, go.mod/go.sum tidy, lint.
verify: fmt-check tidy-check lint

build:
	$(GO) build ./...
	$(GO) build -o $(BIN)/vpa-graceful-drain ./cmd/vpa-graceful-drain

# Serves the function with func-go's http runtime, exactly as kn func's scaffolding does.
run:
	LISTEN_ADDRESS=$(LISTEN_ADDRESS) $(GO) run ./cmd/vpa-graceful-drain

# Posts a sample event (headers + body, as ApiServerSource sends it) to the running function.
invoke:
	@test/events/invoke.sh "$(EVENT)" "$(URL)"

# Packages with unit tests only; test/... needs the real components.
UNIT_PKGS = $$($(GO) list ./... | grep -v '/test/')

# Uninstalling: removes the finalizer from every pod (NAMESPACE=ns to limit, DRY_RUN=true to list).
release-finalizers:
	$(GO) run ./cmd/release-finalizers $(if $(NAMESPACE),-namespace $(NAMESPACE)) $(if $(filter true,$(DRY_RUN)),-dry-run) $(if $(CONFIG_MAP),-config-map $(CONFIG_MAP))

unit:
	$(GO) test -count=1 $(UNIT_PKGS)

# Everything: gofmt, vet and lint, the unit tests with the race detector, then the integration
# and end-to-end tests (both tags) against the real components. The real-cluster packages run
# one at a time (-p 1) and without -race: their timing checks need the 2 cores.
test: fmt-check vet lint binaries
	$(GO) test -race -count=1 $(UNIT_PKGS)
	$(GO) test -tags '$(TAGS)' -count=1 -p 1 -timeout 15m ./test/...

integration: binaries
	$(GO) test -tags integration -count=1 -timeout 10m -v ./test/integration/

e2e: binaries
	$(GO) test -tags e2e -count=1 -timeout 10m -v ./test/e2e/

# The performance table (test/bench): eight rows against their targets, each with its floor
# measured in the same run; also written as JSON to .bench/. About 3 minutes on 2 cores, after
# `binaries`. BENCH_FLAGS passes flags (e.g. BENCH_FLAGS='-rows 1,2'; go run ./test/bench -h).
bench: binaries
	$(GO) run ./test/bench $(BENCH_FLAGS)

# Every Go benchmark of the unit packages (the raw numbers behind row 1, and more).
bench-go:
	$(GO) test -run '^$$' -bench . -benchmem $(UNIT_PKGS)

# Fuzzing (make fuzz FUZZTIME=30s): one target at a time. A plain `go test` (make unit, make
# test) runs their seeds and testdata/fuzz corpora; a failing input lands in testdata/fuzz.
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzDecode$$' -fuzztime $(FUZZTIME) ./eventing
	$(GO) test -run '^$$' -fuzz '^FuzzReadRequest$$' -fuzztime $(FUZZTIME) ./eventing
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeMatchesEncodingJSON$$' -fuzztime $(FUZZTIME) ./eventing
	$(GO) test -run '^$$' -fuzz '^FuzzDecide$$' -fuzztime $(FUZZTIME) ./handlers/drain
	$(GO) test -run '^$$' -fuzz '^FuzzReconcileEventCopy$$' -fuzztime $(FUZZTIME) ./handlers
	$(GO) test -run '^$$' -fuzz '^FuzzSurgeDecide$$' -fuzztime $(FUZZTIME) ./handlers/surge

demo: binaries
	$(GO) run ./test/demo

# Soak (make soak DURATION=30m): steady churn of managed pods through the real adapter; one line
# a minute (RSS, threads, goroutines, pods, stranded drains, release lateness), then a summary.
# Fails if a pod was stranded or the RSS grew by more than 50% from the 2-minute mark.
soak: binaries
	$(GO) run ./test/soak -duration $(DURATION)

# ---- real components, built from the Go module proxy, cached in bin/ ----------------------
binaries: $(REAL_BINARIES)

$(BIN)/kube-apiserver: test/tools/kube/go.mod test/tools/kube/go.sum
	@echo ">> building kube-apiserver $(KUBE_VERSION) from Go modules (about 5 minutes once on 2 cores, then cached in bin/)"
	cd test/tools/kube && CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(KUBE_LDFLAGS)' -o $@ k8s.io/kubernetes/cmd/kube-apiserver

$(BIN)/kube-controller-manager: test/tools/kube/go.mod test/tools/kube/go.sum
	@echo ">> building kube-controller-manager $(KUBE_VERSION) from Go modules (about 2 minutes once)"
	cd test/tools/kube && CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(KUBE_LDFLAGS)' -o $@ k8s.io/kubernetes/cmd/kube-controller-manager

$(BIN)/etcd: test/tools/etcd/go.mod test/tools/etcd/go.sum
	@echo ">> building etcd v3.7.3 from Go modules (about 1 minute once)"
	cd test/tools/etcd && CGO_ENABLED=0 $(GO) build -trimpath -ldflags '-s -w' -o $@ go.etcd.io/etcd/server/v3

$(BIN)/apiserver_receive_adapter: test/tools/adapter/go.mod test/tools/adapter/go.sum
	@echo ">> building the Knative ApiServerSource adapter (eventing v0.50.0) from Go modules (1 to 4 minutes once)"
	cd test/tools/adapter && CGO_ENABLED=0 $(GO) build -trimpath -ldflags '-s -w' -o $@ knative.dev/eventing/cmd/apiserver_receive_adapter

# VPA's admission controller (k8s.io/autoscaler/vertical-pod-autoscaler v1.8.1, the version
# whose updater code handlers/surge calls), for the surge-rollout tests (test/surge).
$(BIN)/vpa-admission-controller: test/tools/vpa/go.mod test/tools/vpa/go.sum
	@echo ">> building VPA's admission controller v1.8.1 from Go modules (about 1.5 minutes once)"
	cd test/tools/vpa && CGO_ENABLED=0 $(GO) build -trimpath -ldflags '-s -w' -o $@ k8s.io/autoscaler/vertical-pod-autoscaler/pkg/admission-controller

# The linter, pinned in its own build-only module like the real components.
$(BIN)/staticcheck: test/tools/lint/go.mod test/tools/lint/go.sum
	@echo ">> building staticcheck v0.8.2 from Go modules (about 30 seconds once)"
	cd test/tools/lint && CGO_ENABLED=0 $(GO) build -trimpath -ldflags '-s -w' -o $@ honnef.co/go/tools/cmd/staticcheck

clean:
	rm -rf $(BIN)

# The kubectl plugin: `kubectl vpa-drain status|release` (cmd/kubectl-vpa_drain). go install puts
# kubectl-vpa_drain in $(go env GOBIN), else the first $(go env GOPATH)/bin: that directory must
# be on PATH for kubectl to find it (`kubectl plugin list` shows it).
install-plugin:
	$(GO) install ./cmd/kubectl-vpa_drain
	@echo "installed kubectl-vpa_drain in $$(d=$$($(GO) env GOBIN); [ -n "$$d" ] && echo "$$d" || echo "$$($(GO) env GOPATH | cut -d: -f1)/bin"): run kubectl vpa-drain --help"
