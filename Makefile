# roster's tasks. `make test` is what CI runs; `make run` is the main job.

GO       ?= go
FUZZTIME ?= 30s
COUNT    ?= 6
LISTEN   ?= 127.0.0.1:8899

# Every fuzz target, as package:Target.
FUZZ_TARGETS = \
	./idgen:FuzzValidate \
	./preset:FuzzParse \
	./protocol:FuzzDecode \
	./protocol:FuzzCookieStateJSON \
	./cookies:FuzzSetCookieHeader \
	./codec:FuzzNewReader \
	./session:FuzzUnmarshalSession \
	./daemon:FuzzProxyCredentials \
	./daemon:FuzzInterceptClientBytes \
	./internal/fingerprint:FuzzParseClientHello \
	./internal/fingerprint:FuzzReadHTTP2 \
	./internal/fingerprint:FuzzReadHTTP1

SOAK     ?= 60s

.PHONY: all run example test vet lint bench fuzz cover stress load soak fingerprints

all: test

## run: rosterd, the Manager as a local proxy and API on $(LISTEN).
run:
	$(GO) run ./cmd/rosterd -listen $(LISTEN)

## example: the worker-pool example against an embedded go-httpbin.
example:
	$(GO) run ./examples/workerpool

## test: gofmt, vet, staticcheck, then every test with the race detector (goleak runs in each package).
test: vet lint
	$(GO) test -race -count=1 ./...
	cd bench && $(GO) vet ./... && $(GO) test -race -count=1 ./...

vet:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt: the files above need formatting"; exit 1; }
	$(GO) vet ./...

lint:
	$(GO) tool staticcheck ./...

## bench: the comparative benchmarks in bench/ (a module of its own), as one table.
bench:
	cd bench && COUNT=$(COUNT) ./run.sh

## fuzz: each fuzz target for FUZZTIME.
fuzz:
	@for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; name=$${t##*:}; \
		echo "fuzz $$pkg $$name for $(FUZZTIME)"; \
		$(GO) test -run '^$$' -fuzz "^$$name$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
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

## load: requests/s and p99 through rosterd against a direct client, in one run.
load:
	ROSTER_LOAD=1 $(GO) test -count=1 -run TestLoad -v ./daemon

## soak: a bounded mixed load (SOAK=60s) that checks counters, goroutines and heap at the end.
soak:
	$(GO) run ./cmd/roster-soak -duration $(SOAK)

## fingerprints: capture Debian's chromium and firefox-esr, headless, through the fingerprinting
## server on loopback into testdata/fingerprints/ (installs them with apt-get; not run by CI).
fingerprints:
	@command -v chromium >/dev/null && command -v firefox-esr >/dev/null && command -v certutil >/dev/null || \
		{ apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium firefox-esr libnss3-tools; }
	$(GO) run ./internal/fingerprint/cmd/capture -out testdata/fingerprints -runs 3
