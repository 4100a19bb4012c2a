# perfuse: build, test and demo.
#
#   make            build build/perfused, build/perfusectl, build/perfuse-sim
#   make demo       run the demo protocol on the simulated rig and summarise the run file
#   make dashboard  the web dashboard on a private mosquitto, with the simulated rig running the demo
#   make check      check the layering, build and run every test (unit, integration, end-to-end)
#   make asan       the same tests under AddressSanitizer + UndefinedBehaviorSanitizer
#   make soak       the recorder's kill -9 crash test with 200 kills (about 10 minutes)
#   make soak-mqtt  the MQTT tests at full length: 60 s of samples, a 20 s broker outage
#   make soak-dashboard  the dashboard page for 30 minutes at 64 channels x 10 Hz, its heap sampled
#   make bench      timing, recorder, interlock, Modbus and regulation benchmarks (figures printed, not asserted)
#   make install    install the programs under $(DESTDIR)$(PREFIX)
#
# Missing Debian packages are installed by scripts/install-deps the first time
# any target needs them.

.DEFAULT_GOAL := all

PREFIX  ?= /usr/local
DESTDIR ?=
BUILD   ?= build
PYTHON  ?= /usr/bin/python3

PKGS := libuv libmodbus libserialport hdf5 yaml-0.1 jansson nettle libsystemd libmosquitto
TEST_PKGS := cmocka

VERSION := $(shell cat VERSION 2>/dev/null || echo 0.0.0)
GIT_REV := $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)

CC      ?= cc
OPT     ?= -O2 -g
CFLAGS  := -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror $(OPT) $(EXTRA_CFLAGS) \
           -DPERFUSE_PREFIX='"$(PREFIX)"' -DPERFUSE_VERSION='"$(VERSION)"' -DPERFUSE_GIT_REV='"$(GIT_REV)"' \
           -I. -Icontroller
LDFLAGS := $(EXTRA_LDFLAGS)

# build/config.mk holds the pkg-config flags. It is made (after installing any
# missing package, the test tools and Python modules too) before anything else,
# and make re-reads it automatically; a change to install-deps remakes it.
CONFIG := $(BUILD)/config.mk
-include $(CONFIG)

$(CONFIG): scripts/install-deps Makefile
	@mkdir -p $(BUILD)
	@scripts/install-deps
	@pkg-config --exists $(PKGS) $(TEST_PKGS) || { echo "pkg-config still misses one of: $(PKGS) $(TEST_PKGS)" >&2; exit 1; }
	@{ echo "PKG_CFLAGS := $$(pkg-config --cflags $(PKGS))"; \
	   echo "PKG_LIBS := $$(pkg-config --libs $(PKGS)) -lm -lpthread"; \
	   echo "TEST_CFLAGS := $$(pkg-config --cflags $(TEST_PKGS))"; \
	   echo "TEST_LIBS := $$(pkg-config --libs $(TEST_PKGS))"; } > $@.tmp && mv $@.tmp $@

# The web dashboard (controller/dashboard/): its npm packages installed from
# the lockfile, its ES modules bundled by esbuild into one classic script
# (mosquitto's http_dir sends no Content-Type, which module scripts need), and
# the page, its style and uPlot's style copied: $(BUILD)/dashboard/ is the
# folder mosquitto serves.
DASH_DIR   := controller/dashboard
DASH_SRCS  := $(wildcard $(DASH_DIR)/*.html $(DASH_DIR)/*.css $(DASH_DIR)/src/*.js)
DASHBOARD  := $(BUILD)/dashboard/index.html

MAINS      := controller/daemon/perfused.c controller/ctl/perfusectl.c drivers/sim/perfuse-sim.c
LIB_SRCS   := $(filter-out $(MAINS),$(wildcard controller/*/*.c drivers/*.c drivers/sim/*.c))
LIB_OBJS   := $(LIB_SRCS:%.c=$(BUILD)/obj/%.o)
UNIT_SRCS  := $(wildcard tests/unit/test_*.c)
SUPPORT_OBJS := $(patsubst %.c,$(BUILD)/obj/%.o,$(wildcard tests/unit/support/*.c))
UNIT_BINS  := $(UNIT_SRCS:tests/unit/%.c=$(BUILD)/tests/%)
PROGS      := $(BUILD)/perfused $(BUILD)/perfusectl $(BUILD)/perfuse-sim


.PHONY: all dashboard soak-dashboard check layers unit e2e demo asan fuzz fuzz-smoke bench bench-timing bench-parallel bench-recorder bench-longrun bench-export bench-interlock bench-modbus bench-mqtt bench-regulation bench-linerate soak soak-mqtt clean install deps
all: $(PROGS) $(DASHBOARD)

deps: $(CONFIG)

$(BUILD)/obj/%.o: %.c $(CONFIG)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(PKG_CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/libperfuse.a: $(LIB_OBJS)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/perfused: $(BUILD)/obj/controller/daemon/perfused.o $(BUILD)/libperfuse.a
	$(CC) $(CFLAGS) $^ $(LDFLAGS) $(PKG_LIBS) -o $@

$(BUILD)/perfusectl: $(BUILD)/obj/controller/ctl/perfusectl.o $(BUILD)/libperfuse.a
	$(CC) $(CFLAGS) $^ $(LDFLAGS) $(PKG_LIBS) -o $@

$(BUILD)/perfuse-sim: $(BUILD)/obj/drivers/sim/perfuse-sim.o $(BUILD)/libperfuse.a
	$(CC) $(CFLAGS) $^ $(LDFLAGS) $(PKG_LIBS) -o $@

# What the unit tests share (a pty pair, a driver on a pty, a scripted or a
# model responder, a config error collector, the syringe pumps' channels);
# built with the tests' flags, so `make asan` gets sanitized copies.
$(BUILD)/obj/tests/unit/support/%.o: tests/unit/support/%.c $(CONFIG)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(PKG_CFLAGS) $(TEST_CFLAGS) -MMD -MP -c $< -o $@

# Reached only through pattern rules, make would delete them after each link.
.SECONDARY: $(SUPPORT_OBJS)

$(BUILD)/tests/%: tests/unit/%.c $(SUPPORT_OBJS) $(BUILD)/libperfuse.a $(CONFIG)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(PKG_CFLAGS) $(TEST_CFLAGS) -Itests/unit/support -MMD -MP -MT $@ -MF $@.d \
	    $< $(SUPPORT_OBJS) $(BUILD)/libperfuse.a $(LDFLAGS) $(PKG_LIBS) $(TEST_LIBS) -o $@

$(DASH_DIR)/node_modules/.package-lock.json: $(DASH_DIR)/package.json $(DASH_DIR)/package-lock.json $(CONFIG)
	cd $(DASH_DIR) && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

$(DASHBOARD): $(DASH_SRCS) $(DASH_DIR)/node_modules/.package-lock.json
	@rm -rf $(BUILD)/dashboard.tmp && mkdir -p $(BUILD)/dashboard.tmp
	$(DASH_DIR)/node_modules/.bin/esbuild $(DASH_DIR)/src/main.js --bundle --format=iife --target=es2020 --minify --sourcemap \
	    --log-level=warning --outfile=$(BUILD)/dashboard.tmp/app.js
	cp $(DASH_DIR)/index.html $(DASH_DIR)/style.css $(DASH_DIR)/node_modules/uplot/dist/uPlot.min.css $(BUILD)/dashboard.tmp/
	cp $(DASH_DIR)/node_modules/mqtt/LICENSE.md $(BUILD)/dashboard.tmp/mqtt.LICENSE.md
	cp $(DASH_DIR)/node_modules/uplot/LICENSE $(BUILD)/dashboard.tmp/uPlot.LICENSE
	@rm -rf $(BUILD)/dashboard && mv $(BUILD)/dashboard.tmp $(BUILD)/dashboard

# The dashboard on a private mosquitto with the simulated rig running the demo (scripts/dashboard).
dashboard: $(PROGS) $(DASHBOARD)
	@BUILD=$(BUILD) PYTHON=$(PYTHON) scripts/dashboard

# The page for 30 minutes against a rig of 64 channels at 10 Hz, its JS heap sampled each minute.
SOAK_DASHBOARD_MIN ?= 30
soak-dashboard: $(PROGS) $(DASHBOARD)
	@BUILD=$(BUILD) PYTHON=$(PYTHON) $(PYTHON) tests/e2e/dashboard_soak.py --minutes $(SOAK_DASHBOARD_MIN)

# Unit tests: each cmocka binary runs in its own process.
unit: $(UNIT_BINS)
	@tests/run-unit $(UNIT_BINS)

# Integration and end-to-end tests: the real programs on the simulated rig.
e2e: $(PROGS) $(DASHBOARD)
	@BUILD=$(BUILD) PYTHON=$(PYTHON) tests/run-e2e

# Everything is built first, in parallel; then the suites run (the e2e suites
# several at a time, see tests/run-e2e).
NPROC := $(shell nproc 2>/dev/null || echo 2)
check: $(CONFIG) layers
	@$(MAKE) --no-print-directory -j$(NPROC) $(PROGS) $(DASHBOARD) $(UNIT_BINS) $(FUZZ_TARGETS)
	@$(MAKE) --no-print-directory unit e2e fuzz-smoke

# The include layering of controller/ and drivers/ (controller/LAYERS).
layers:
	@$(PYTHON) scripts/check-layers

demo: $(PROGS)
	@BUILD=$(BUILD) PYTHON=$(PYTHON) scripts/demo

# Timing bounds in the tests scale with PERFUSE_TEST_SLOWDOWN under the sanitizers.
asan:
	PERFUSE_TEST_SLOWDOWN=3 $(MAKE) BUILD=build-asan OPT="-O1 -g -fno-omit-frame-pointer" \
	    EXTRA_CFLAGS="-fsanitize=address,undefined -fno-sanitize-recover=undefined" \
	    EXTRA_LDFLAGS="-fsanitize=address,undefined" check

# libFuzzer targets, built with clang into build-fuzz/. `make fuzz` runs each for
# FUZZ_SECONDS (default 600); `make check` runs a 10-second smoke pass of each.
FUZZ_SECONDS ?= 600
FUZZ_TARGETS := $(patsubst tests/fuzz/%.c,build-fuzz/%,$(wildcard tests/fuzz/fuzz_*.c))

ifneq ($(BUILD),build-fuzz)
.PHONY: build-fuzz/libperfuse.a
build-fuzz/libperfuse.a: $(CONFIG)
	$(MAKE) BUILD=build-fuzz CC=clang OPT="-O1 -g" \
	    EXTRA_CFLAGS="-fsanitize=fuzzer-no-link,address,undefined" build-fuzz/libperfuse.a
endif

build-fuzz/fuzz_%: tests/fuzz/fuzz_%.c build-fuzz/libperfuse.a
	clang $(CFLAGS) -O1 -g -fsanitize=fuzzer,address,undefined $(PKG_CFLAGS) $< \
	    build-fuzz/libperfuse.a $(PKG_LIBS) -o $@

fuzz: $(FUZZ_TARGETS)
	@tests/run-fuzz $(FUZZ_SECONDS) $(FUZZ_TARGETS)

fuzz-smoke: $(FUZZ_TARGETS)
	@tests/run-fuzz 10 $(FUZZ_TARGETS)

# The recorder's crash test at length: 200 kill -9 moments instead of 20.
soak: $(PROGS)
	@BUILD=$(BUILD) PYTHON=$(PYTHON) CRASH_KILLS=200 CRASH_TIMEOUT=5400 bash tests/e2e/recorder_crash.sh

# Benchmarks: programs that measure; their figures are printed, not asserted.
BENCH_DURATION ?= 60
BENCH_LINERATE_DURATION ?= 30
$(BUILD)/bench/floor: tests/bench/floor.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $< -o $@

bench-timing: $(PROGS) $(BUILD)/bench/floor
	@BUILD=$(BUILD) $(PYTHON) scripts/bench-timing --duration $(BENCH_DURATION)

# Setpoint dispatch lateness and perfused's CPU with 8 runs at once against 1 run.
bench-parallel: $(PROGS)
	@BUILD=$(BUILD) $(PYTHON) scripts/bench-parallel --duration $(BENCH_DURATION)

$(BUILD)/bench/recorder: tests/bench/recorder.c $(BUILD)/libperfuse.a $(CONFIG)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(PKG_CFLAGS) $< $(BUILD)/libperfuse.a $(LDFLAGS) $(PKG_LIBS) -o $@

# Samples per second through the recorder path against a plain HDF5 loop.
BENCH_DIR ?= /tmp
bench-recorder: $(BUILD)/bench/recorder
	@$(BUILD)/bench/recorder -n 10000000 -c 64 -d $(BENCH_DIR)

$(BUILD)/bench/modbus-raw: tests/bench/modbus_raw.c $(CONFIG)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(PKG_CFLAGS) $< $(LDFLAGS) $(PKG_LIBS) -o $@

# Modbus TCP reads per second through the daemon against raw libmodbus, same server.
bench-modbus: $(PROGS) $(BUILD)/bench/modbus-raw
	@BUILD=$(BUILD) $(PYTHON) scripts/bench-modbus

# A 14-day simulated run's file: time to open it and read a channel in h5py.
bench-longrun: $(PROGS)
	@BUILD=$(BUILD) PYTHON=$(PYTHON) scripts/bench-longrun

# A simulated week at 10 Hz exported by perfuse-export as 1-minute means.
bench-export: $(PROGS)
	@BUILD=$(BUILD) PYTHON=$(PYTHON) scripts/bench-export

# Interlock latency: 50 safe-stops on the simulator, the distribution printed, with
# line-rate emulation on and off.
bench-interlock: $(PROGS)
	@echo "line-rate emulation on (the simulated lines carry bytes at their baud rate):"
	@BUILD=$(BUILD) PYTHON=$(PYTHON) INTERLOCK_TRIALS=50 bash tests/e2e/interlock_latency.sh | grep -v "^perfused: info"
	@echo "line-rate emulation off (bytes instantly, as the figures before line-rate emulation):"
	@BUILD=$(BUILD) PYTHON=$(PYTHON) INTERLOCK_TRIALS=50 INTERLOCK_LINE_RATE=off bash tests/e2e/interlock_latency.sh | grep -v "^perfused: info"

$(BUILD)/bench/regulation: tests/bench/regulation.c $(BUILD)/libperfuse.a $(CONFIG)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(PKG_CFLAGS) $< $(BUILD)/libperfuse.a $(LDFLAGS) $(PKG_LIBS) -o $@

# Closed-loop flow regulation on the simulated chip: shipped and autotuned gains, every case.
bench-regulation: $(BUILD)/bench/regulation
	@$(BUILD)/bench/regulation

$(BUILD)/bench/history: tests/bench/history.c $(BUILD)/libperfuse.a $(CONFIG)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(PKG_CFLAGS) $< $(BUILD)/libperfuse.a $(LDFLAGS) $(PKG_LIBS) -o $@

# What a history reply of 64 channels costs the loop (decimation) and the thread pool (its text).
.PHONY: bench-history
bench-history: $(BUILD)/bench/history
	@$(BUILD)/bench/history

# MQTT: the daemon's CPU with and without publishing, 65 channels at 10 Hz, and
# the latency from a sample to a subscriber.
bench-mqtt: $(PROGS)
	@BUILD=$(BUILD) $(PYTHON) scripts/bench-mqtt --duration $(BENCH_DURATION)

# The MQTT acceptance at full length (make check runs them shorter).
soak-mqtt: $(PROGS)
	@BUILD=$(BUILD) PYTHON=$(PYTHON) MQTT_RUN_S=60 bash tests/e2e/mqtt_telemetry.sh
	@BUILD=$(BUILD) PYTHON=$(PYTHON) MQTT_OUTAGE_S=20 bash tests/e2e/mqtt_outage.sh

bench-linerate: $(PROGS) $(BUILD)/bench/floor
	@BUILD=$(BUILD) $(PYTHON) scripts/bench-linerate --duration $(BENCH_LINERATE_DURATION)

bench: bench-timing bench-parallel bench-recorder bench-longrun bench-export bench-interlock bench-modbus bench-mqtt bench-regulation bench-linerate bench-history

# The programs embed PERFUSE_PREFIX (where they find the simulated rig and the
# device profiles), so the objects that use it are rebuilt whenever PREFIX
# changes: $(BUILD)/prefix holds the prefix they were built for.
PREFIX_OBJS := $(patsubst %.c,$(BUILD)/obj/%.o,$(shell grep -l PERFUSE_PREFIX $(wildcard controller/*/*.c drivers/*.c drivers/sim/*.c)))
$(PREFIX_OBJS): $(BUILD)/prefix
.PHONY: FORCE
$(BUILD)/prefix: FORCE
	@mkdir -p $(BUILD)
	@echo '$(PREFIX)' | cmp -s - $@ || echo '$(PREFIX)' >$@

# What `make install` puts under $(DESTDIR)$(PREFIX): the programs and the
# run-file scripts in bin/, the protocols, rigs and profiles, the service
# file and the web dashboard in share/perfuse/, the guides in share/doc/perfuse/, a man page per
# program made by help2man from its own --help and --version, and bash completion.
SCRIPTS  := perfuse-export perfuse-plot perfuse-summary perfuse-mqtt-series
DOCS     := README.md:README.md scripts/README.md:run-files.md controller/daemon/CONTROL.md:CONTROL.md \
            controller/MQTT.md:MQTT.md protocols/FORMAT.md:FORMAT.md drivers/README.md:drivers.md \
            controller/README.md:controller.md scripts/mosquitto/README.md:mosquitto.md \
            $(if $(wildcard protocols/RIG.md),protocols/RIG.md:RIG.md)
MAN_NAME_perfused            := the perfusion daemon: runs protocols on a rig and records them
MAN_NAME_perfusectl          := control perfused, and check or simulate protocols offline
MAN_NAME_perfuse-sim         := a simulated perfusion rig speaking the real wire protocols
MAN_NAME_perfuse-export      := export a perfuse run file to CSV
MAN_NAME_perfuse-plot        := plot a perfuse run file
MAN_NAME_perfuse-summary     := what a perfuse run file holds
MAN_NAME_perfuse-mqtt-series := rebuild a channel series from the MQTT samples of a rig
MANDIR   := $(BUILD)/man

$(MANDIR)/%.1: $(BUILD)/% $(CONFIG)
	@mkdir -p $(dir $@)
	help2man --no-info --no-discard-stderr --name='$(MAN_NAME_$*)' -o $@ $<

$(MANDIR)/%.1: scripts/% VERSION $(CONFIG)
	@mkdir -p $(dir $@)
	help2man --no-info --no-discard-stderr --name='$(MAN_NAME_$*)' -o $@ $<

MANS := $(patsubst %,$(MANDIR)/%.1,perfused perfusectl perfuse-sim $(SCRIPTS))

install: $(PROGS) $(MANS) $(DASHBOARD)
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/perfuse/protocols/profiles \
	    $(DESTDIR)$(PREFIX)/share/perfuse/dashboard \
	    $(DESTDIR)$(PREFIX)/share/perfuse/protocols/rigs $(DESTDIR)$(PREFIX)/share/doc/perfuse \
	    $(DESTDIR)$(PREFIX)/share/man/man1 $(DESTDIR)$(PREFIX)/share/bash-completion/completions
	install -m 0755 $(PROGS) $(DESTDIR)$(PREFIX)/bin/
	install -m 0755 $(addprefix scripts/,$(SCRIPTS)) $(DESTDIR)$(PREFIX)/bin/
	install -m 0644 VERSION $(DESTDIR)$(PREFIX)/share/perfuse/
	install -m 0644 protocols/*.yaml $(DESTDIR)$(PREFIX)/share/perfuse/protocols/
	install -m 0644 protocols/profiles/*.yaml $(DESTDIR)$(PREFIX)/share/perfuse/protocols/profiles/
	install -m 0644 protocols/rigs/*.yaml $(DESTDIR)$(PREFIX)/share/perfuse/protocols/rigs/
	sed 's|/usr/local/|$(PREFIX)/|g' scripts/perfused.service >$(DESTDIR)$(PREFIX)/share/perfuse/perfused.service
	chmod 0644 $(DESTDIR)$(PREFIX)/share/perfuse/perfused.service
	install -m 0644 $(BUILD)/dashboard/* $(DESTDIR)$(PREFIX)/share/perfuse/dashboard/
	$(foreach d,$(DOCS),install -m 0644 $(word 1,$(subst :, ,$(d))) $(DESTDIR)$(PREFIX)/share/doc/perfuse/$(word 2,$(subst :, ,$(d)))$(newline))
	install -m 0644 $(MANS) $(DESTDIR)$(PREFIX)/share/man/man1/
	install -m 0644 scripts/completion/perfuse.bash $(DESTDIR)$(PREFIX)/share/bash-completion/completions/perfusectl
	for p in perfused perfuse-sim $(SCRIPTS); do \
	    ln -sf perfusectl $(DESTDIR)$(PREFIX)/share/bash-completion/completions/$$p; done

define newline


endef

clean:
	rm -rf build build-asan build-fuzz

-include $(LIB_OBJS:.o=.d) $(SUPPORT_OBJS:.o=.d) $(UNIT_BINS:=.d) $(BUILD)/obj/controller/daemon/perfused.d $(BUILD)/obj/controller/ctl/perfusectl.d $(BUILD)/obj/drivers/sim/perfuse-sim.d
