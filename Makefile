GO ?= go
ADDR ?= :8080

.PHONY: run build test services vet fuzz bench bench-short bench-engine

## run: build and serve the embedded default on :8080 (dev mode: no API keys)
run:
	$(GO) run ./cmd/verdict serve --dev --addr $(ADDR)

## build: build the verdict binary
build:
	$(GO) build -o verdict ./cmd/verdict

## test: every test (Go, Rego policy tests, real Redis and Postgres), race detector on
test: services vet
	$(GO) test -race -count=1 -timeout 9m ./...

services:
	@.ci/services

vet:
	@test -z "$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))" || { echo "gofmt needed:"; gofmt -l .; exit 1; }
	$(GO) vet ./...

## fuzz: run each fuzz target for FUZZTIME (default 20s)
FUZZTIME ?= 20s
fuzz:
	$(GO) test ./adapters/http -run '^$$' -fuzz FuzzDecideRequest -fuzztime $(FUZZTIME)
	$(GO) test ./adapters/http -run '^$$' -fuzz FuzzTooDeep -fuzztime $(FUZZTIME)
	$(GO) test ./engine -run '^$$' -fuzz FuzzLoadCEL -fuzztime $(FUZZTIME)
	$(GO) test ./engine -run '^$$' -fuzz FuzzLoadRego -fuzztime $(FUZZTIME)
	$(GO) test ./engine -run '^$$' -fuzz FuzzLoadData -fuzztime $(FUZZTIME)
	$(GO) test ./engine -run '^$$' -fuzz FuzzLibDecide -fuzztime $(FUZZTIME)
	$(GO) test ./signals -run '^$$' -fuzz FuzzNormalizeListValue -fuzztime $(FUZZTIME)
	$(GO) test ./store -run '^$$' -fuzz FuzzCanonicalJSONMatchesEncodingJSON -fuzztime $(FUZZTIME)
	$(GO) test ./adapters/providers/onfido -run '^$$' -fuzz FuzzVerifyWebhook -fuzztime $(FUZZTIME)
	$(GO) test ./adapters/providers/onfido -run '^$$' -fuzz FuzzParseEvent -fuzztime $(FUZZTIME)
	$(GO) test ./adapters/providers/persona -run '^$$' -fuzz FuzzParseSignatureHeader -fuzztime $(FUZZTIME)
	$(GO) test ./adapters/providers/persona -run '^$$' -fuzz FuzzVerifyWebhook -fuzztime $(FUZZTIME)
	$(GO) test ./adapters/providers/persona -run '^$$' -fuzz FuzzParsePayload -fuzztime $(FUZZTIME)
	$(GO) test ./adapters/providers/sumsub -run '^$$' -fuzz FuzzVerifyWebhook -fuzztime $(FUZZTIME)
	$(GO) test ./adapters/providers/sumsub -run '^$$' -fuzz FuzzParsePayload -fuzztime $(FUZZTIME)
	$(GO) test ./adapters/providers/sumsub -run '^$$' -fuzz FuzzParseCreatedAt -fuzztime $(FUZZTIME)
	$(GO) test ./adapters/providers/veriff -run '^$$' -fuzz FuzzVerifyWebhook -fuzztime $(FUZZTIME)
	$(GO) test ./adapters/providers/veriff -run '^$$' -fuzz FuzzParsePayload -fuzztime $(FUZZTIME)
	$(GO) test ./adapters/providers/sandbox -run '^$$' -fuzz FuzzVerifyWebhook -fuzztime $(FUZZTIME)
	$(GO) test ./adapters/providers/sandbox -run '^$$' -fuzz FuzzParsePayload -fuzztime $(FUZZTIME)
	$(GO) test ./adapters/http -run '^$$' -fuzz FuzzParseLabelsCSV -fuzztime $(FUZZTIME)
	$(GO) test ./engine/policytest -run '^$$' -fuzz FuzzScrub -fuzztime $(FUZZTIME)
	$(GO) test ./adapters/retention -run '^$$' -fuzz FuzzParse -fuzztime $(FUZZTIME)
	$(GO) test ./adapters/http -run '^$$' -fuzz '^FuzzDecideResponseJSON$$' -fuzztime $(FUZZTIME)
	$(GO) test ./adapters/http -run '^$$' -fuzz '^FuzzParseAPIKeys$$' -fuzztime $(FUZZTIME)
	$(GO) test ./engine -run '^$$' -fuzz '^FuzzAppendJSONMatchesEncodingJSON$$' -fuzztime $(FUZZTIME)
	$(GO) test ./engine -run '^$$' -fuzz '^FuzzLiteralReasonCodes$$' -fuzztime $(FUZZTIME)
	$(GO) test ./engine/pii -run '^$$' -fuzz '^FuzzSplitMerge$$' -fuzztime $(FUZZTIME)
	$(GO) test ./adapters/vault -run '^$$' -fuzz '^FuzzParseRing$$' -fuzztime $(FUZZTIME)
	$(GO) test ./store -run '^$$' -fuzz '^FuzzCheckpointJSON$$' -fuzztime $(FUZZTIME)
	$(GO) test ./engine/backtest -run '^$$' -fuzz '^FuzzSweepValues$$' -fuzztime $(FUZZTIME)
	$(GO) test ./engine/policytest -run '^$$' -fuzz '^FuzzParseCELCases$$' -fuzztime $(FUZZTIME)
	$(GO) test ./cmd/verdict -run '^$$' -fuzz '^FuzzParseSweep$$' -fuzztime $(FUZZTIME)
	$(GO) test ./cmd/verdict -run '^$$' -fuzz '^FuzzBacktestExport$$' -fuzztime $(FUZZTIME)

## bench-engine: engine micro-benchmarks (Rego and CEL)
bench-engine:
	$(GO) test ./engine -run '^$$' -bench . -benchmem -count 3

## bench: Verdict (embedded; Redis+Postgres) side by side with OPA and the host's floor (bench/floor -fsync), ~9 minutes; writes bench/results
bench:
	$(GO) run ./bench/compare -floor -out bench/results

## bench-short: the same comparison in under 2 minutes (noisier; not for publishing)
bench-short:
	$(GO) run ./bench/compare -short -out bench/results
