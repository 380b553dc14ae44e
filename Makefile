# gopvgrub - see README.md. Targets:
#   make            build build/gopvgrub-x86_64.gz (the PV image) and build/gopvgrub (host CLI)
#   make test       unit tests (seconds; no root, no Xen)
#   make e2e        test-bed scenarios under real Xen in QEMU (root); SCENARIOS="a b" selects
#   make bench      benchmarks; BENCH=name selects one group
#   make check      everything CI runs (the README's test command)
#   make demo       the main job: build the image and boot a sample guest through it
SHELL := /bin/bash
GO ?= go
BUILD ?= build
MODULE := github.com/gopvgrub/gopvgrub
SCENARIOS ?=
BENCH ?=
export GOFLAGS := -buildvcs=false

.PHONY: all image host test vet fmt-check fuzz-smoke e2e bench check demo deps clean
all: image host

# The PV kernel: a stock GOOS=linux build whose entry is the shim (minios),
# then the post-link tool adds the Xen notes and gzips it.
PV_ENV := GOOS=linux GOARCH=amd64 CGO_ENABLED=0 GOEXPERIMENT=norandomizedheapbase64
PV_LDFLAGS := -E $(MODULE)/minios.xenStart -buildid=
GO_SOURCES := $(shell find . -name '*.go' -o -name '*.s' | grep -v _test.go) go.mod go.sum

image: $(BUILD)/gopvgrub-x86_64.gz
$(BUILD)/gopvgrub.elf: $(GO_SOURCES)
	@mkdir -p $(BUILD)
	$(PV_ENV) $(GO) build -tags xenpv -trimpath -ldflags='$(PV_LDFLAGS)' -o $@ ./cmd/gopvgrub-pv
$(BUILD)/gopvgrub-x86_64.gz: $(BUILD)/gopvgrub.elf $(BUILD)/mkimage
	$(BUILD)/mkimage -o $@ $(BUILD)/gopvgrub.elf
$(BUILD)/mkimage: $(GO_SOURCES)
	@mkdir -p $(BUILD)
	$(GO) build -o $@ ./cmd/mkimage

host: $(BUILD)/gopvgrub
$(BUILD)/gopvgrub: $(GO_SOURCES)
	@mkdir -p $(BUILD)
	$(GO) build -o $@ ./cmd/gopvgrub

deps:
	bash tools/host-deps.sh

test:
	$(GO) test ./...

vet:
	$(GO) vet ./...

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed: $$out"; exit 1; fi

# Every fuzz target runs briefly (FUZZTIME executions each) on top of its seed corpus.
FUZZTIME ?= 20000x
fuzz-smoke:
	bash tools/fuzz-smoke.sh $(FUZZTIME)

e2e: image
	bash testbed/e2e.sh $(SCENARIOS)

bench:
	bash tools/bench.sh $(BENCH)

# The README's test command: deps, static checks, unit tests with every
# asset required, fuzz smoke, then the e2e scenarios under real Xen.
check: deps
	$(MAKE) vet fmt-check
	GOPVGRUB_REQUIRE_ASSETS=1 $(GO) test -count=1 ./...
	$(MAKE) fuzz-smoke
	$(MAKE) e2e

demo: deps image
	bash testbed/demo.sh

clean:
	rm -rf $(BUILD)
