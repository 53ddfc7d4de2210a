# The two entry points (see README): `make demo` runs the main job, `make test`
# runs every test. Both install and start what they need first.
GO ?= go
BIN := bin
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)

.PHONY: all build waiter setup demo test unit fuzz bench lint clean

all: build

build: waiter
	CGO_ENABLED=0 $(GO) build -ldflags '$(LDFLAGS)' -o $(BIN)/ ./cmd/aetherd ./cmd/aether ./cmd/aether-agent

# aether-waiter is C (see its source for why), static like the agent. The
# tests build it here too (testbin.Build, with BIN set to their directory).
waiter:
	@mkdir -p $(BIN)
	$(CC) -static -Os -s -Wall -Wextra -Werror -o $(BIN)/aether-waiter cmd/aether-waiter/waiter.c

setup:
	./scripts/setup.sh

demo: setup build
	./scripts/demo.sh

# Everything, against real dockerd; CI sets nothing else. A missing service
# fails the run instead of skipping (AETHER_REQUIRE_SERVICES=1). Fuzz budgets
# are counts, not durations: with -fuzztime=<duration> Go 1.26's coordinator can
# report "context deadline exceeded" with no crasher on a loaded host
# (go.dev/issue/75804, fixed in Go 1.27).
test: setup lint
	AETHER_REQUIRE_SERVICES=1 AETHER_TEST_QEMU=1 $(GO) test -count=1 -timeout 40m ./...
	$(GO) test -run='^$$' -fuzz=FuzzReadFrame -fuzztime=200000x ./internal/agentproto
	$(GO) test -run='^$$' -fuzz=FuzzAPI -fuzztime=8000x ./internal/api

lint:
	@test -z "$$(gofmt -l cmd internal client apiv1 sdk/go)" || { gofmt -l cmd internal client apiv1 sdk/go; echo "gofmt needed"; exit 1; }
	$(GO) vet ./...
	shellcheck scripts/*.sh .ci/run
	cd tools/openapi-lint && REDOCLY_TELEMETRY=off REDOCLY_SUPPRESS_UPDATE_NOTICE=true \
		./node_modules/.bin/redocly lint --format=stylish ../../internal/api/openapi.json

bench: setup build
	./scripts/bench.sh

clean:
	rm -rf $(BIN)
