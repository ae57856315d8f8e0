# clusterctl — see README.md. Targets run from the repository root.
export PATH := /usr/local/go/bin:$(PATH)
GO      ?= go
BIN     := bin/clusterctl
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.buildVersion=$(VERSION)

.PHONY: build test lint setup check fmt bundle cluster cluster-down
build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/clusterctl

setup:
	bash scripts/setup.sh

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

# The end-to-end tests (test/e2e) bring up real clusters on lab hosts and
# take several minutes each, hence the long timeout.
test:
	$(GO) test -count=1 -timeout 50m ./...

# fuzz runs the whole-folder spec fuzzer for a bounded time (CI: 60s; longer
# runs: make fuzz FUZZTIME=10m). Findings land in spec/testdata/fuzz/.
FUZZTIME ?= 60s
.PHONY: fuzz
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzParseFolder$$' -fuzztime $(FUZZTIME) ./spec/

# bundle fills the shared artifact cache (${XDG_CACHE_HOME:-~/.cache}/clusterctl)
# with every pinned component, built from upstream sources: about 20 minutes
# cold on 2 cores, seconds when warm. See docs/bundle.md.
bundle: build
	$(BIN) bundle build

# check is what CI runs: install, lint, build, fill the bundle, test. The tests
# that run the bundled binaries fail instead of skipping when it is missing.
check: export CLUSTERCTL_REQUIRE_BUNDLE := 1
check: setup lint build bundle test fuzz

# cluster is README's main job: a 3-node cluster (1 control plane, 2 workers)
# on lab hosts in $(LAB), then `kubectl get nodes -o wide`.
LAB ?= mylab
cluster:
	DIR=$(LAB) bash scripts/lab-cluster.sh

cluster-down: build
	$(BIN) lab down --dir $(LAB)

# bench-control-plane times clusterctl bringing up a 1-host control plane on a
# lab host against a plain script starting the same binaries (root; a few
# minutes). See bench/README.md.
.PHONY: bench-control-plane
bench-control-plane:
	$(GO) run ./bench/control-plane

# The other benchmarks (see bench/README.md).
.PHONY: bench-cluster-up bench-upgrade bench-upload
bench-cluster-up:
	$(GO) run ./bench/cluster-up
bench-upgrade:
	$(GO) run ./bench/upgrade
bench-upload:
	$(GO) run ./bench/upload

# conformance runs the upstream Kubernetes conformance suite (e2e.test at
# the cluster's version, built from k8s.io/kubernetes in the bundle's build
# workspace) against the lab cluster of `make cluster`, offline: about an
# hour, root. Not part of check. See docs/conformance.md.
.PHONY: conformance
conformance: build
	$(GO) run ./test/conformance -dir $(LAB)
