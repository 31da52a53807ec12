# roster's tasks. `make test` is what CI runs.

GO       ?= go
FUZZTIME ?= 30s
COUNT    ?= 6

# Every fuzz target, as package:Target.
FUZZ_TARGETS = ./idgen:FuzzValidate ./protocol:FuzzDecode

.PHONY: all test vet lint bench fuzz cover run

all: test

## test: vet, staticcheck, then every test with the race detector (goleak runs in each package).
test: vet lint
	$(GO) test -race -count=1 ./...

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

## run: the worker-pool example.
run:
	$(GO) run ./examples/workerpool
