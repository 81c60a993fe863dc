# ebpf-sentry — build, regenerate, test.
# `make test` (as root) is the test command (README, .ci/run); `make run` the main job.

GO        ?= go
CLANG     ?= clang-19
LLVM_STRIP?= llvm-strip-19
BIN       := bin/ebpf-sentry
FUZZTIME  ?= 10s
PKGS      := ./...

.PHONY: all build cross deps run test test-short lint generate testdata check-generated fuzz bench vmtest clean deb image

all: build

build:
	$(GO) build -o $(BIN) ./cmd/ebpf-sentry

deps:
	./scripts/deps.sh

# The main job: watch every BPF_PROG_LOAD with the embedded default rules.
run: deps build
	./$(BIN) run

# Privileged tests need root; with EBPF_SENTRY_REQUIRE_PRIVILEGED=1 (set by .ci/run)
# a privileged test that cannot run fails instead of skipping.
# Packages whose tests start an enforcing sensor (sensor, and run in cmd) go
# one at a time after the rest: an enforcing sensor kills every loader on the
# host that a block rule matches, another package's test loaders included.
SENSOR_PKGS := ./sensor ./cmd/ebpf-sentry
test: deps
	$(GO) test -count=1 -timeout 40m $$($(GO) list $(PKGS) | grep -v -e '/sensor$$' -e '/cmd/ebpf-sentry$$')
	$(GO) test -count=1 -p 1 -timeout 40m $(SENSOR_PKGS)
	cd deploy && $(GO) test -count=1 -p 1 -timeout 20m ./...

test-short:
	$(GO) test -short -count=1 $(PKGS)

lint:
	@fmt=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$fmt" ]; then echo "gofmt needed: $$fmt"; exit 1; fi
	$(GO) vet $(PKGS)
	$(GO) tool staticcheck $(PKGS)
	cd deploy && $(GO) vet ./... && $(GO) tool staticcheck ./...
	$(MAKE) --no-print-directory cross

# The offline commands (inspect, asm, rules, cbpf, fleet, report rendering)
# build on every platform; run and doctor need the sensor (Linux on amd64:
# its BPF objects are compiled for x86) and scan a Linux kernel, elsewhere
# they say so. Build and vet the command for other platforms (lint runs it,
# so CI does).
CROSS_TARGETS ?= linux/arm64 darwin/arm64 windows/amd64
cross:
	@set -e; for t in $(CROSS_TARGETS); do \
		echo "cross: $$t"; \
		GOOS=$${t%/*} GOARCH=$${t#*/} CGO_ENABLED=0 $(GO) build -o /dev/null ./cmd/ebpf-sentry; \
		GOOS=$${t%/*} GOARCH=$${t#*/} CGO_ENABLED=0 $(GO) vet ./cmd/ebpf-sentry; \
	done

# Regenerate every generated file: BPF objects + Go bindings (bpf2go), stringer
# output and the compiled test programs.
generate: testdata
	$(GO) generate $(PKGS)

testdata:
	$(MAKE) -C testdata CLANG=$(CLANG)

# CI: regenerate and fail if anything differs from what is committed.
check-generated: generate
	@if [ -n "$$(git status --porcelain --untracked-files=all -- . ':!bin')" ]; then \
		echo "generated files differ from the committed ones:"; git status --porcelain --untracked-files=all; git diff --stat; exit 1; fi

# Bounded fuzzing of every Fuzz target (FUZZTIME each); scripts/fuzz.sh says
# how it tells a Go 1.26 coordinator flake from a failing input.
fuzz:
	GO=$(GO) FUZZTIME=$(FUZZTIME) ./scripts/fuzz.sh

bench:
	$(GO) test -run '^$$' -bench . -benchmem $(PKGS)

# Kernel matrix: privileged suites inside qemu VMs booting Debian kernels
# (docs/KERNEL-MATRIX.md); e.g. VMTEST_FLAGS='-kernels 6.12 -run TestKernelCapabilities'.
vmtest: deps
	$(GO) run ./vmtest/cmd/vmrun $(VMTEST_FLAGS)

# Deployment artefacts (deploy/, docs/DEPLOY.md): bin/ebpf-sentry_$(VERSION)_amd64.deb
# and the container image as an OCI layout in bin/image, built without a daemon.
VERSION ?= 0.1.0
deb:
	cd deploy && $(GO) run ./cmd/mkdeb -version $(VERSION)

image:
	cd deploy && $(GO) run ./cmd/mkimage -version $(VERSION)

clean:
	rm -rf bin
