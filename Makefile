# dialmail: GNU make build. One binary (dialmail), unit tests (cmocka),
# integration tests (pytest), and an ASan/UBSan build of the unit tests.
CC      ?= cc
PKGS     = libevent libssl libcrypto libcares jansson zlib libsystemd libzstd
CFLAGS  ?= -O2 -g
DMFLAGS  = -std=gnu11 -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes \
           -Wmissing-prototypes -Wno-unused-parameter -D_GNU_SOURCE -Isrc \
           $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
LDLIBS  += $(shell pkg-config --libs $(PKGS) 2>/dev/null) -levent_openssl -lcrypt -pthread
BUILD   ?= build
PYTEST  ?= /usr/bin/python3 -m pytest
ITESTS  ?= tests/integration

SRC      = $(sort $(wildcard src/*/*.c))
MAIN     = src/cli/main.c
LIBSRC   = $(filter-out $(MAIN),$(SRC))
OBJ      = $(LIBSRC:%.c=$(BUILD)/%.o)
UNITSRC  = $(sort $(wildcard tests/unit/test_*.c))
UNITBIN  = $(UNITSRC:tests/unit/%.c=$(BUILD)/tests/%)

.PHONY: all deps run test unit unit-asan integration integration-asan clean format bench \
        check-layers check-format fuzz fuzz-build fuzz-regress install uninstall deb
TOOLS    = $(BUILD)/modemsim $(BUILD)/smtpc $(BUILD)/dialtest
all: $(BUILD)/dialmail $(TOOLS)

deps:
	@./scripts/install-deps

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(DMFLAGS) $(CPPFLAGS) $(CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/libdialmail.a: $(OBJ)
	rm -f $@ && ar rcs $@ $^

$(BUILD)/dialmail: $(BUILD)/$(MAIN:.c=.o) $(BUILD)/libdialmail.a
	$(CC) $(DMFLAGS) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS)
	ln -sf dialmail $(BUILD)/sendmail
	ln -sf dialmail $(BUILD)/mailq
	ln -sf dialmail $(BUILD)/newaliases

$(BUILD)/tests/%: tests/unit/%.c $(BUILD)/libdialmail.a
	@mkdir -p $(dir $@)
	$(CC) $(DMFLAGS) $(CFLAGS) $(LDFLAGS) -Itests/unit -o $@ $^ $(LDLIBS) -lcmocka

unit: $(UNITBIN)
	@set -e; for t in $(UNITBIN); do echo "== $$t"; (cd tests/unit && ../../$$t); done

# The same unit tests built with AddressSanitizer and UBSan in their own tree.
ASANFLAGS = -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
unit-asan:
	$(MAKE) BUILD=build-asan CFLAGS="$(ASANFLAGS)" LDFLAGS="-fsanitize=address,undefined" unit

# Servers a test starts take ports from TEST_PORTS (see tests/integration/
# conftest.py); the ASan run has a range of its own, so the two can run at once.
TEST_PORTS ?= 20000-25999
integration: $(BUILD)/dialmail $(TOOLS)
	DIALMAIL_TEST_PORTS=$(TEST_PORTS) \
	DIALMAIL_BIN=$(abspath $(BUILD)/dialmail) MODEMSIM_BIN=$(abspath $(BUILD)/modemsim) \
	SMTPC_BIN=$(abspath $(BUILD)/smtpc) DIALTEST_BIN=$(abspath $(BUILD)/dialtest) \
	$(PYTEST) -q --durations=10 $(ITESTS)

# The integration tests again, against a daemon built with ASan and UBSan;
# the fixtures fail a test whose daemon log holds a sanitizer report.
# The long dial-up soak, the demo (and the browser test, which runs it), the
# emulator's own tests and the 30-second line-speed test exercise no daemon
# path the rest does not; they stay out of the slower ASan run, as does the
# Debian package test (it builds its own binary from the tree, not the ASan one).
integration-asan:
	$(MAKE) BUILD=build-asan CFLAGS="$(ASANFLAGS)" LDFLAGS="-fsanitize=address,undefined" \
		TEST_PORTS=26000-31999 \
		ITESTS="tests/integration --ignore=tests/integration/test_soak.py \
		--ignore=tests/integration/test_demo.py --ignore=tests/integration/test_browser.py \
		--ignore=tests/integration/test_modemsim.py --ignore=tests/integration/test_deb.py \
		--deselect tests/integration/test_answer.py::test_large_messages_both_ways_at_line_speed" \
		integration

# The two integration runs mostly wait (modem pacing, timers): they run side
# by side, each printing its output when it is done.
test: deps
	$(MAKE) all
	$(MAKE) check-layers
	$(MAKE) check-format
	$(MAKE) unit
	$(MAKE) unit-asan
	$(MAKE) fuzz-regress
	$(MAKE) -j2 --output-sync=target integration integration-asan

# --- make install / make uninstall (README.md, "Installing"). Copies what
# `make` built in $(BUILD) (it does not build: run make first, so that
# `sudo make install` compiles nothing as root) below $(DESTDIR)$(PREFIX):
# the binary and its sendmail/mailq names in sbin, modemsim in bin, man pages,
# docs and example configurations under share (never /etc), and the systemd
# unit with ExecStart naming the installed binary. uninstall removes exactly
# those files, then the two doc directories of dialmail's own if empty.
PREFIX      ?= /usr/local
DESTDIR     ?=
SBINDIR      = $(PREFIX)/sbin
BINDIR       = $(PREFIX)/bin
MANDIR       = $(PREFIX)/share/man
DOCDIR       = $(PREFIX)/share/doc/dialmail
EXAMPLEDIR   = $(DOCDIR)/examples
UNITDIR      = $(PREFIX)/lib/systemd/system
MANPAGES     = $(sort $(wildcard man/*.[158]))
DOCS         = README.md $(sort $(wildcard docs/*.md))
EXAMPLES     = etc/dialmail.conf etc/demo.conf etc/demo-hub.conf
D            = $(DESTDIR)

install:
	@for f in $(BUILD)/dialmail $(BUILD)/modemsim; do \
		test -x $$f || { echo "install: $$f is not built (run make first)"; exit 1; }; done
	install -D -m 0755 $(BUILD)/dialmail $(D)$(SBINDIR)/dialmail
	ln -sfn dialmail $(D)$(SBINDIR)/sendmail
	ln -sfn dialmail $(D)$(SBINDIR)/mailq
	ln -sfn dialmail $(D)$(SBINDIR)/newaliases
	install -D -m 0755 $(BUILD)/modemsim $(D)$(BINDIR)/modemsim
	@set -e; for f in $(MANPAGES); do \
		s=$${f##*.}; echo "install -D -m 0644 $$f $(D)$(MANDIR)/man$$s/$${f##*/}"; \
		install -D -m 0644 $$f $(D)$(MANDIR)/man$$s/$${f##*/}; done
	@set -e; for f in $(DOCS); do \
		echo "install -D -m 0644 $$f $(D)$(DOCDIR)/$${f##*/}"; \
		install -D -m 0644 $$f $(D)$(DOCDIR)/$${f##*/}; done
	@set -e; for f in $(EXAMPLES); do \
		echo "install -D -m 0644 $$f $(D)$(EXAMPLEDIR)/$${f##*/}"; \
		install -D -m 0644 $$f $(D)$(EXAMPLEDIR)/$${f##*/}; done
	install -D -m 0644 etc/logrotate.d/dialmail $(D)$(EXAMPLEDIR)/logrotate.d/dialmail
	install -D -m 0644 etc/dialmail.service $(D)$(UNITDIR)/dialmail.service
	sed -i 's|^ExecStart=[^ ]*/dialmail |ExecStart=$(SBINDIR)/dialmail |' \
		$(D)$(UNITDIR)/dialmail.service
	@grep -q '^ExecStart=$(SBINDIR)/dialmail ' $(D)$(UNITDIR)/dialmail.service || \
		{ echo "install: ExecStart of dialmail.service was not rewritten"; exit 1; }

uninstall:
	rm -f $(D)$(SBINDIR)/dialmail $(D)$(SBINDIR)/sendmail $(D)$(SBINDIR)/mailq $(D)$(SBINDIR)/newaliases
	rm -f $(D)$(BINDIR)/modemsim
	rm -f $(foreach f,$(MANPAGES),$(D)$(MANDIR)/man$(subst .,,$(suffix $(f)))/$(notdir $(f)))
	rm -f $(addprefix $(D)$(DOCDIR)/,$(notdir $(DOCS)))
	rm -f $(addprefix $(D)$(EXAMPLEDIR)/,$(notdir $(EXAMPLES)))
	rm -f $(D)$(EXAMPLEDIR)/logrotate.d/dialmail
	rm -f $(D)$(UNITDIR)/dialmail.service
	rmdir $(D)$(EXAMPLEDIR)/logrotate.d $(D)$(EXAMPLEDIR) $(D)$(DOCDIR) 2>/dev/null || true

# --- make deb: the Debian package (debian/; README.md, "The Debian
# package"), built by dpkg-buildpackage in a copy of the tree under
# $(BUILD)/deb (dpkg-buildpackage writes its results next to the tree it
# builds: here, not in the checkout's parent). The unit tests are left to
# make test (nocheck). Result: $(BUILD)/deb/dialmail_VERSION_ARCH.deb;
# make deb-lint runs lintian on it.
DEBDIR = $(BUILD)/deb
deb:
	rm -rf $(DEBDIR) && mkdir -p $(DEBDIR)/dialmail
	tar -cf - --exclude='./build*' --exclude=./.git --exclude=./run \
		--exclude=__pycache__ --exclude=.pytest_cache . | tar -xf - -C $(DEBDIR)/dialmail
	cd $(DEBDIR)/dialmail && DEB_BUILD_OPTIONS="nocheck $(DEB_BUILD_OPTIONS)" \
		dpkg-buildpackage -b -uc -us -Pnocheck -j2 >../build.log 2>&1 || \
		{ tail -40 ../build.log; exit 1; }
	@ls $(DEBDIR)/*.deb

deb-lint:
	lintian --info --display-info $(DEBDIR)/*.changes

run: deps all
	BUILD=$(abspath $(BUILD)) ./scripts/demo

bench: deps all
	./bench/receive

# The layers of src/ (src/LAYERS): no include of a higher or sibling
# layer's header (scripts/check-layers), the negative example in tests/layers
# still caught, and no call between folders against the order in the linked
# objects (scripts/depgraph).
check-layers: all
	@scripts/check-layers
	@if scripts/check-layers tests/layers/upward >$(BUILD)/layers-neg.out 2>&1; then \
		echo "check-layers: tests/layers/upward was not refused"; exit 1; fi
	@grep -q 'src/queue/upward.c:3: queue may not include "deliver/delivery.h"' $(BUILD)/layers-neg.out
	@grep -q 'src/smtp/sibling.c:3: smtp may not include "link/modem.h"' $(BUILD)/layers-neg.out
	@echo "check-layers: the negative example tests/layers/upward is refused"
	@scripts/depgraph $(BUILD) >$(BUILD)/depgraph.out || { cat $(BUILD)/depgraph.out; exit 1; }
	@tail -1 $(BUILD)/depgraph.out

FORMATTED = $(SRC) $(wildcard src/*/*.h) $(UNITSRC) $(wildcard tests/unit/*.h) \
            $(wildcard tools/*/*.c tools/*/*.h) $(wildcard tests/fuzz/*.c tests/fuzz/*.h)
format:
	clang-format -i $(FORMATTED)

# The committed .clang-format, checked (make format fixes it).
check-format:
	@clang-format --dry-run -Werror $(FORMATTED)
	@echo "check-format: $(words $(FORMATTED)) files match .clang-format"

clean:
	rm -rf build build-asan build-fuzz

-include $(shell find $(BUILD) -path $(BUILD)/deb -prune -o -name '*.d' -type f -print 2>/dev/null)

# --- smtpc: test driver for the SMTP client (tools/smtpc), added by the
# smtp-client helper; the integration tests in test_smtp_client.py use it.
$(BUILD)/smtpc: $(patsubst %.c,$(BUILD)/%.o,$(wildcard tools/smtpc/*.c)) $(BUILD)/libdialmail.a
	$(CC) $(DMFLAGS) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# --- dialtest: test driver for the link engine (tools/dialtest), added by the
# link-layer helper; tests/integration/test_dialer.py uses it.
$(BUILD)/dialtest: $(patsubst %.c,$(BUILD)/%.o,$(wildcard tools/dialtest/*.c)) $(BUILD)/libdialmail.a
	$(CC) $(DMFLAGS) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# --- modemsim (tools/modemsim): the Hayes modem emulator on a pseudo-terminal.
# A program of its own; it uses only the mail-free helpers of src/lib.
MODEMSIM_SRC = $(sort $(wildcard tools/modemsim/*.c))
MODEMSIM_OBJ = $(MODEMSIM_SRC:%.c=$(BUILD)/%.o) \
               $(addprefix $(BUILD)/src/lib/,buf.o clock.o log.o xmalloc.o)
$(BUILD)/modemsim: $(MODEMSIM_OBJ)
	$(CC) $(DMFLAGS) $(CFLAGS) $(LDFLAGS) -o $@ $^ -lutil

# --- fuzzing (tests/fuzz/README.md): one libFuzzer harness per target, built
# with clang in a tree of its own against the library compiled with the
# fuzzer's coverage hooks, ASan and UBSan. fuzz-regress runs each harness
# over its committed corpus only (seconds; part of make test); fuzz runs
# each for FUZZ_SECONDS on a copy of its corpus, crashes kept in
# build-fuzz/artifacts/TARGET/.
FUZZ_BUILD   = build-fuzz
FUZZ_SECONDS ?= 60
FUZZ_TARGETS = $(patsubst tests/fuzz/fuzz_%.c,%,$(sort $(wildcard tests/fuzz/fuzz_*.c)))
FUZZ_BINS    = $(FUZZ_TARGETS:%=$(FUZZ_BUILD)/fuzz/%)
FUZZCFLAGS   = -O1 -g -fno-omit-frame-pointer -fsanitize=fuzzer-no-link,address,undefined \
               -fno-sanitize-recover=all
FUZZLDFLAGS  = -fsanitize=fuzzer,address,undefined

fuzz-build:
	$(MAKE) BUILD=$(FUZZ_BUILD) CC=clang CFLAGS="$(FUZZCFLAGS)" LDFLAGS="$(FUZZLDFLAGS)" \
		$(FUZZ_BINS)

$(BUILD)/fuzz/%: tests/fuzz/fuzz_%.c tests/fuzz/common.c tests/fuzz/common.h $(BUILD)/libdialmail.a
	@mkdir -p $(dir $@)
	$(CC) $(DMFLAGS) $(CFLAGS) $(LDFLAGS) -Itests/fuzz -o $@ $(filter %.c %.a,$^) $(LDLIBS)

fuzz-regress: fuzz-build
	@set -e; for t in $(FUZZ_TARGETS); do \
		log=$(FUZZ_BUILD)/regress-$$t.log; \
		if ! $(FUZZ_BUILD)/fuzz/$$t -runs=0 -timeout=30 tests/fuzz/corpus/$$t >$$log 2>&1; then \
			tail -40 $$log; echo "fuzz-regress: $$t FAILED (log: $$log)"; exit 1; fi; \
		n=$$(ls tests/fuzz/corpus/$$t | wc -l); \
		echo "fuzz-regress: $$t: $$n inputs, $$(grep -o 'cov: [0-9]* ft: [0-9]*' $$log | tail -1)"; \
	done

fuzz: fuzz-build
	@set -e; for t in $(FUZZ_TARGETS); do \
		c=$(FUZZ_BUILD)/corpus/$$t; a=$(FUZZ_BUILD)/artifacts/$$t; \
		rm -rf $$c; mkdir -p $$c $$a; cp tests/fuzz/corpus/$$t/* $$c/; \
		echo "== fuzz $$t for $(FUZZ_SECONDS)s (log: $(FUZZ_BUILD)/fuzz-$$t.log)"; \
		if ! $(FUZZ_BUILD)/fuzz/$$t -max_total_time=$(FUZZ_SECONDS) -timeout=30 \
			-artifact_prefix=$$a/ -print_final_stats=1 $$c >$(FUZZ_BUILD)/fuzz-$$t.log 2>&1; then \
			tail -60 $(FUZZ_BUILD)/fuzz-$$t.log; echo "fuzz: $$t crashed: see $$a/"; exit 1; fi; \
		grep -E '^#[0-9]+.*(DONE|pulse)' $(FUZZ_BUILD)/fuzz-$$t.log | tail -1; \
	done
