# AuthNet for Linux: developer entry points. `make test` is the test command.
#
# Variables can be overridden on the command line, e.g.
#   make test AUTHNET_ORT_LIB=/opt/onnxruntime/lib/libonnxruntime.so.1.22.1

REPO := $(abspath $(dir $(lastword $(MAKEFILE_LIST))))
CARGO ?= cargo

# The ONNX Runtime shared library that `make setup` vendors (pinned by sha256 in
# scripts/setup.sh). The runtime reads AUTHNET_ORT_LIB; tests default to this same path.
AUTHNET_ORT_LIB := $(REPO)/vendor/onnxruntime/lib/libonnxruntime.so.1.22.1
export AUTHNET_ORT_LIB

MAN_PAGES := $(wildcard $(REPO)/man/*.[0-9])

.PHONY: setup build test lint fmt-check clippy man-lint doc clean distclean regen-models

## setup: Debian packages, vendored ONNX Runtime, model hash checks (idempotent, fast)
setup:
	$(REPO)/scripts/setup.sh

## build: debug build of every crate, as the tests use it
build:
	$(CARGO) build --workspace

## test: setup, then the whole test suite against the vendored ONNX Runtime
test: setup
	$(CARGO) test --workspace

## lint: formatting, clippy with warnings as errors, and the manual pages
lint: fmt-check clippy man-lint

fmt-check:
	$(CARGO) fmt --all -- --check

clippy:
	$(CARGO) clippy --workspace --all-targets -- -D warnings

man-lint:
ifneq ($(MAN_PAGES),)
	mandoc -T lint -W warning $(MAN_PAGES)
else
	@echo "man-lint: no pages in man/"
endif

## doc: API documentation, warnings as errors
doc:
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --workspace --no-deps

## clean: remove build output (keeps the vendored ONNX Runtime and downloads)
clean:
	$(CARGO) clean

## distclean: also remove the vendored ONNX Runtime and .cache/ (`make setup` restores them)
distclean: clean
	rm -rf $(REPO)/vendor/onnxruntime $(REPO)/.cache

## regen-models: rebuild models/mobilefacenet.onnx from npm and check it (needs npm, network)
regen-models:
	$(REPO)/scripts/regen-mobilefacenet.sh

# Placeholders, owned by other engineers, to be added as real targets later:
#   demo:      run the daemon on recorded frames from ../shared/data
#   install:   install pam_authnet.so, authnetd, configs, units and man pages
#   uninstall: remove what `install` installed
