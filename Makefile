# clusterctl — see README.md. Targets run from the repository root.
export PATH := /usr/local/go/bin:$(PATH)
GO      ?= go
BIN     := bin/clusterctl
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.buildVersion=$(VERSION)

.PHONY: build test lint setup check fmt
build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/clusterctl

setup:
	bash scripts/setup.sh

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

test:
	$(GO) test -count=1 ./...

# check is what CI runs: install, lint, test.
check: setup lint build test
