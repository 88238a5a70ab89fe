# enc-pipe — every target is a thin wrapper over the go tool.
#
#   make test        everything CI runs: vet, unit, race, integration against real servers
#   make lint        gofmt, go vet, staticcheck, cross-builds
#   make fuzz        every fuzz target for a bounded time (FUZZTIME, default 20s each)
#   make bench       micro-benchmarks (BENCHTIME, COUNT)
#   make deps-check  the core packages import no cloud SDK, Kafka client or test library
#   make demo        the main job on the embedded default: encrypt and decrypt this README

SHELL := /bin/bash
GO ?= go
FUZZTIME ?= 20s
BENCHTIME ?= 1s
COUNT ?= 6
STATICCHECK_VERSION ?= v0.8.2
export CGO_ENABLED ?= 1

# Packages that start goroutines or share state between them: run under -race.
RACE_PKGS := ./securebuf/... ./envelope/... ./stream/... ./sinks/... ./sources/... ./transfer/... .

# The core: no AWS, no Kafka, no testify in their non-test import graphs.
CORE_PKGS := ./securebuf/... ./stream/... ./envelope ./envelope/internal/... \
	./envelope/metastore/memstore ./envelope/metastore/sqlstore ./envelope/kms/statickms
FORBIDDEN := github.com/aws/|github.com/segmentio/kafka-go|github.com/stretchr/testify|github.com/twmb/

.PHONY: test unit race integration lint fuzz bench deps-check demo services-start services-stop

test: deps-check
	@bash .ci/services.sh start
	@set -e; . "$$(bash .ci/services.sh envfile)"; \
	  trap '[ -n "$$KEEP_SERVICES" ] || bash .ci/services.sh stop' EXIT; \
	  $(GO) vet ./...; \
	  $(GO) test -count=1 -timeout 20m ./...; \
	  $(GO) test -count=1 -timeout 20m -race $(RACE_PKGS)

unit:
	$(GO) test -count=1 ./...

race:
	$(GO) test -count=1 -race $(RACE_PKGS)

services-start:
	bash .ci/services.sh start

services-stop:
	bash .ci/services.sh stop

deps-check:
	@bad=$$($(GO) list -deps $(CORE_PKGS) | grep -E '$(FORBIDDEN)' || true); \
	if [ -n "$$bad" ]; then echo "deps-check: core packages import forbidden dependencies:"; echo "$$bad"; exit 1; fi; \
	echo "deps-check: core packages are free of cloud SDKs, Kafka clients and test libraries"

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt -l:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) ./...
	@for p in linux/amd64 linux/arm64 darwin/amd64 darwin/arm64 windows/amd64 freebsd/amd64; do \
	  echo "build $$p"; GOOS=$${p%/*} GOARCH=$${p#*/} CGO_ENABLED=0 $(GO) build ./... || exit 1; done

fuzz:
	@for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg 2>/dev/null | grep '^Fuzz' || true); do \
	    echo "fuzz $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; done; done

bench:
	$(GO) test -run '^$$' -bench . -benchmem -benchtime $(BENCHTIME) -count $(COUNT) ./...

demo:
	@mkdir -p bin && $(GO) build -o bin/enc-pipe ./cmd/enc-pipe
	bin/enc-pipe encrypt -i README.md -o README.md.ep
	bin/enc-pipe inspect README.md.ep
	bin/enc-pipe decrypt -i README.md.ep | cmp - README.md && echo "demo: README.md round-tripped through enc-pipe"
