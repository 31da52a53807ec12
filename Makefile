# roster's tasks. `make test` is what CI runs; `make run` is the main job.

GO       ?= go
FUZZTIME ?= 30s
COUNT    ?= 6
# make run listens on LISTEN, else ROSTER_LISTEN, else 127.0.0.1:8899.
LISTEN   ?= $(or $(ROSTER_LISTEN),127.0.0.1:8899)

# Every fuzz target, as package:Target.
FUZZ_TARGETS = \
	./idgen:FuzzValidate \
	./preset:FuzzParse \
	./protocol:FuzzDecode \
	./protocol:FuzzDecodeState \
	./protocol:FuzzCookieStateJSON \
	./cookies:FuzzSetCookieHeader \
	./codec:FuzzNewReader \
	./session:FuzzUnmarshalSession \
	./session:FuzzH1WriteHead \
	./session:FuzzH1Response \
	./daemon:FuzzProxyCredentials \
	./daemon:FuzzInterceptClientBytes \
	./internal/fingerprint:FuzzParseClientHello \
	./internal/fingerprint:FuzzReadHTTP2 \
	./internal/fingerprint:FuzzReadHTTP1 \
	./daemon:FuzzParseConnectTarget

SOAK     ?= 60s

.PHONY: all run example test vet lint bench fuzz cover stress load soak fingerprints

all: test

## run: rosterd, the Manager as a local proxy and API on $(LISTEN).
## It builds bin/rosterd first, naming each package it compiles, so a cold
## start (a minute or two) is not silent.
run:
	@echo "make run: compiling rosterd into bin/ (the first time takes a minute or two; packages as they compile):"
	$(GO) build -v -o bin/rosterd ./cmd/rosterd
	@echo "make run: starting rosterd on $(LISTEN)"
	./bin/rosterd -listen $(LISTEN)

## example: the worker-pool example against an embedded go-httpbin.
example:
	$(GO) run ./examples/workerpool

# The Go files gofmt checks: found on disk, so that a source archive without
# .git works too.
GOFILES = $$(find . -name '*.go' -not -path './.git/*' -not -path '*/testdata/*')

## test: gofmt, vet, staticcheck, then every test with the race detector (goleak runs in each package).
## Each step says what it does; a cold first run takes several minutes, mostly compiling.
test: vet lint
	@echo "make test: compiling with the race detector (packages as they compile; a few minutes the first time)"
	$(GO) build -race -v ./...
	@echo "make test: go test -race ./... (about two minutes on 2 cores)"
	$(GO) test -race -count=1 ./...
	@echo "make test: bench/ (a module of its own): vet and tests"
	cd bench && $(GO) vet ./... && $(GO) test -race -count=1 ./...
	@echo "make test: all passed"

vet:
	@echo "make test: gofmt"
	@test -z "$$(gofmt -l $(GOFILES))" || { gofmt -l $(GOFILES); echo "gofmt: the files above need formatting"; exit 1; }
	@echo "make test: go vet (compiles every package the first time)"
	$(GO) vet ./...

lint:
	@echo "make test: staticcheck (builds staticcheck the first time: about a minute)"
	$(GO) tool staticcheck ./...

## bench: the comparative benchmarks in bench/ (a module of its own), as one table.
bench:
	cd bench && COUNT=$(COUNT) ./run.sh

## fuzz: each fuzz target for FUZZTIME.
fuzz:
	@for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; name=$${t##*:}; \
		echo "fuzz $$pkg $$name for $(FUZZTIME)"; \
		$(GO) test -run '^$$' -fuzz "^$$name$$" -fuzztime $(FUZZTIME) -fuzzminimizetime 10x $$pkg || exit 1; \
	done

## cover: tests with coverage, summary per function in cover.out.
cover:
	$(GO) test -count=1 -coverprofile=cover.out ./...
	$(GO) tool cover -func=cover.out | tail -1

## stress: the reliability suites of session, long (ROSTER_STRESS=1; about 7 minutes on 2 cores).
## rapid's -rapid.checks/-rapid.steps and RAPID_CHECKS/RAPID_STEPS scale the model test further.
stress:
	ROSTER_STRESS=1 $(GO) test -race -count=1 -timeout 30m -v \
		-run 'TestLinearizab|TestManagerModel|TestFault' ./session

## load: rosterd's proxy path against direct, a minimal Go proxy and goproxy (tuned), as one table
## (bench/cmd/proxyload; LOAD_DURATION=10s LOAD_ROUNDS=5 for a longer run). The older in-process
## comparison against a direct client: ROSTER_LOAD=1 go test -run TestLoad -v ./daemon.
load:
	cd bench && $(GO) run ./cmd/proxyload

## soak: a bounded mixed load (SOAK=60s) that checks counters, goroutines and heap at the end.
soak:
	$(GO) run ./cmd/roster-soak -duration $(SOAK)

## fingerprints: capture Debian's chromium and firefox-esr, headless, through the fingerprinting
## server on loopback into testdata/fingerprints/ (installs them with apt-get; not run by CI).
fingerprints:
	@command -v chromium >/dev/null && command -v firefox-esr >/dev/null && command -v certutil >/dev/null || \
		{ apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium firefox-esr libnss3-tools; }
	$(GO) run ./internal/fingerprint/cmd/capture -out testdata/fingerprints -runs 3
