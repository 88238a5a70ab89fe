# enc-pipe — every target is a thin wrapper over the go tool.
#
#   make test        everything CI runs: vet, unit, race, integration against real servers
#   make lint        gofmt, go vet, staticcheck, cross-builds, then make vuln
#   make vuln        govulncheck on every module, when the vulnerability database can be reached
#   make fuzz        every fuzz target for a bounded time (FUZZTIME, default 20s each)
#   make bench       micro-benchmarks (BENCHTIME, COUNT)
#   make deps-check  the core packages import no cloud SDK, Kafka client, metrics library or test library
#   make demo        the main job on the embedded default: encrypt and decrypt this README

SHELL := /bin/bash
GO ?= go
FUZZTIME ?= 20s
BENCHTIME ?= 1s
COUNT ?= 6
STATICCHECK_VERSION ?= v0.8.2
GOVULNCHECK_VERSION ?= v1.10.0
# The Go vulnerability database: https://vuln.go.dev, or file:///path/to/vulndb
# for a local copy (the layout govulncheck -db reads, with index/db.json).
VULNDB ?= https://vuln.go.dev
# With VULN_REQUIRED=1, make vuln fails when the database cannot be reached
# (for CI machines that have the network); by default it says so and goes on.
VULN_REQUIRED ?=
# Every Go module of the repository.
MODULES := . bench tools/testservers
export CGO_ENABLED ?= 1

# Packages that start goroutines or share state between them: run under -race.
RACE_PKGS := ./securebuf/... ./envelope/... ./stream/... ./sinks/... ./sources/... ./records/... ./transfer/... .

# The core: no AWS, no Kafka, no testify, no Prometheus in their non-test
# import graphs. Metrics reach the core through the stdlib-only ./metrics
# interface; metrics/prommetrics (Prometheus) is outside the core.
CORE_PKGS := ./securebuf/... ./stream/... ./envelope ./envelope/internal/... \
	./envelope/metastore/memstore ./envelope/metastore/sqlstore ./envelope/kms/statickms \
	./envelope/asherahcompat/... ./metrics
FORBIDDEN := github.com/aws/|github.com/segmentio/kafka-go|github.com/stretchr/testify|github.com/twmb/|github.com/prometheus/

.PHONY: test unit race integration lint vuln fuzz bench bench-report deps-check demo services-start services-stop

test: deps-check
	@bash $(CURDIR)/.ci/services.sh start
	@set -e; . "$$(bash $(CURDIR)/.ci/services.sh envfile)"; \
	  trap '[ -n "$$KEEP_SERVICES" ] || bash $(CURDIR)/.ci/services.sh stop' EXIT; \
	  $(GO) vet ./...; \
	  $(GO) test -count=1 -timeout 20m ./...; \
	  $(GO) test -count=1 -timeout 20m -race $(RACE_PKGS); \
	  (cd bench && $(GO) vet ./... && $(GO) test -count=1 ./...)

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
	echo "deps-check: core packages are free of cloud SDKs, Kafka clients, Prometheus and test libraries"

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt -l:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) ./...
	@for p in linux/amd64 linux/arm64 darwin/amd64 darwin/arm64 windows/amd64 freebsd/amd64; do \
	  echo "build $$p"; GOOS=$${p%/*} GOARCH=$${p#*/} CGO_ENABLED=0 $(GO) build ./... || exit 1; done
	@$(MAKE) --no-print-directory vuln

# govulncheck reports known vulnerabilities in the code paths our modules
# reach. It needs the vulnerability database: when $(VULNDB) cannot be
# reached, vuln prints "vuln: NOT CHECKED" and succeeds (or fails with
# VULN_REQUIRED=1); it never reports a pass it did not check.
vuln:
	@db='$(VULNDB)'; \
	case "$$db" in \
	  file://*) [ -f "$${db#file://}/index/db.json" ]; reach=$$?;; \
	  *) curl -fsS -m 15 -o /dev/null "$$db/index/db.json" 2>/dev/null; reach=$$?;; \
	esac; \
	if [ $$reach -ne 0 ]; then \
	  echo "vuln: NOT CHECKED: the vulnerability database $$db cannot be reached; govulncheck did not run."; \
	  echo "vuln: run 'make vuln' where it can be, or set VULNDB=file:///path/to/a/copy."; \
	  [ -z "$(VULN_REQUIRED)" ] || exit 1; exit 0; \
	fi; \
	for m in $(MODULES); do \
	  echo "govulncheck $$m (database $$db)"; \
	  $(GO) run golang.org/x/vuln/cmd/govulncheck@$(GOVULNCHECK_VERSION) -C "$$m" -db "$$db" -show version ./... || exit 1; done

fuzz:
	@for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg 2>/dev/null | grep '^Fuzz' || true); do \
	    echo "fuzz $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; done; done

bench:
	$(GO) test -run '^$$' -bench . -benchmem -benchtime $(BENCHTIME) -count $(COUNT) ./...

# bench-report: the comparison suite of bench/ (enc-pipe vs cat, AES-GCM, age,
# Tink; records; memory), interleaved rounds, into the generated section of
# docs/PERFORMANCE.md and docs/perf/*.svg. ROUNDS (default 7) and SIZE
# (default 1G) set the run time; QUICK=1 is a smoke check (2 rounds, 64M)
# that writes to bench/results/tmp/ instead of docs/. Needs hyperfine.
bench-report:
	@command -v hyperfine >/dev/null || { echo "bench-report: hyperfine is not installed (apt-get install -y hyperfine)"; exit 1; }
	cd bench && ROUNDS='$(ROUNDS)' SIZE='$(SIZE)' QUICK='$(QUICK)' $(GO) run ./cmd/benchrun -out results/tmp && \
	  $(GO) run ./cmd/benchreport -in results/tmp/results.json \
	    $(if $(QUICK),-doc results/tmp/PERFORMANCE.md -figs results/tmp/perf,-doc ../docs/PERFORMANCE.md -figs ../docs/perf)

demo:
	@mkdir -p bin && $(GO) build -o bin/enc-pipe ./cmd/enc-pipe
	bin/enc-pipe encrypt -i README.md -o README.md.ep
	bin/enc-pipe inspect README.md.ep
	bin/enc-pipe decrypt -i README.md.ep | cmp - README.md && echo "demo: README.md round-tripped through enc-pipe"
