# SPDX-License-Identifier: GPL-2.0
# sluice: everything generated goes under build/. V=1 shows the commands.

ARCH      := $(shell uname -m | sed 's/x86_64/x86/;s/aarch64/arm64/')
MULTIARCH := $(shell gcc -print-multiarch 2>/dev/null || echo $(shell uname -m)-linux-gnu)
BUILD     := build
CLANG     ?= clang
BPFTOOL   ?= bpftool
CC        ?= gcc

ifeq ($(V),1)
Q =
else
Q = @
endif

# Every folder nf/<name>/ with a <name>.bpf.c is an NF: its BPF object, its
# control code (nf/<name>/*.c, in libsluice) and its tests (nf/<name>/tests/)
# are found here, so adding an NF touches no shared list.
NFS       := $(sort $(patsubst nf/%/,%,$(dir $(wildcard nf/*/*.bpf.c))))
NF_INC    := $(addprefix -Inf/,$(NFS))
# NF control code (libsluice) and its sources for the sanitizer builds.
NF_SRCS   := $(foreach n,$(NFS),$(filter-out %.bpf.c,$(wildcard nf/$(n)/*.c)))

BPF_CFLAGS := -g -O2 -target bpf -D__TARGET_ARCH_$(ARCH) -Wall -Werror \
	-I$(BUILD) -Ibpf/include $(NF_INC) -I/usr/include/$(MULTIARCH)
CFLAGS    ?= -O2 -g
CFLAGS    += -Wall -Wextra -Wno-unused-parameter -Wno-missing-field-initializers -Werror -std=gnu11 \
	-I$(BUILD) -Ibpf/include -Ilib $(NF_INC)
LDLIBS    := -lbpf -lelf -lz -lyaml
# httpmon's OTLP span exporter (nf/httpmon/otlp.c, in libsluice).
LDLIBS    += -lcurl -lpthread
# "events.h" in user-space code is libsluice's (lib/events.h), not the record
# layout of the same name in bpf/include/, which sluice_abi.h includes.
CFLAGS    += -iquote lib

BPF_OBJS  := $(BUILD)/root.bpf.o $(foreach n,$(NFS),$(BUILD)/$(n).bpf.o)
SKELS     := $(BPF_OBJS:.bpf.o=.skel.h)
LIB_SRCS  := $(wildcard lib/*.c) $(NF_SRCS)
LIB_OBJS  := $(patsubst %.c,$(BUILD)/obj/%.o,$(LIB_SRCS))
CLI_SRCS  := $(wildcard cmd/sluice/*.c)
CLI_OBJS  := $(patsubst %.c,$(BUILD)/obj/%.o,$(CLI_SRCS))
DAEMON_SRCS := $(wildcard cmd/sluiced/*.c)
DAEMON_OBJS := $(patsubst %.c,$(BUILD)/obj/%.o,$(DAEMON_SRCS))
# The request handling without main.c (the fuzz harness has its own main).
DAEMON_API_SRCS := $(filter-out cmd/sluiced/main.c,$(DAEMON_SRCS))
HDRS      := $(wildcard bpf/include/*.h lib/*.h nf/*/*.h)

# NF test programs: nf/<name>/tests/<t>.c builds to build/tests/<t>, linked
# against libsluice (the firewall's two have rules of their own below);
# tests/run.sh runs every one of them, and every nf/*/tests/*.sh.
NF_TEST_SRCS := $(filter-out nf/firewall/tests/%,$(wildcard nf/*/tests/*.c))
NF_TESTS  := $(addprefix $(BUILD)/tests/,$(basename $(notdir $(NF_TEST_SRCS))))

.PHONY: all deps test demo clean bench bench-quick fuzz
all: $(BUILD)/sluice $(BUILD)/sluiced $(BUILD)/tests/fw_progrun $(BUILD)/tests/obs_progrun $(BUILD)/tests/pipeline_progrun $(BUILD)/tests/fw_parse_asan $(BUILD)/tests/config_unit_asan $(NF_TESTS)

deps:
	$(Q)scripts/deps.sh

$(BUILD)/vmlinux.h:
	$(Q)mkdir -p $(BUILD)
	$(Q)$(BPFTOOL) btf dump file /sys/kernel/btf/vmlinux format c > $@.tmp && mv $@.tmp $@

$(BUILD)/root.bpf.o: bpf/root/root.bpf.c $(HDRS) $(BUILD)/vmlinux.h
	@echo "  BPF   $@"
	$(Q)$(CLANG) $(BPF_CFLAGS) -c $< -o $@

define nf_bpf_rule
$(BUILD)/$(1).bpf.o: nf/$(1)/$(1).bpf.c $(HDRS) $(BUILD)/vmlinux.h
	@echo "  BPF   $$@"
	$(Q)$(CLANG) $(BPF_CFLAGS) -c $$< -o $$@
endef
$(foreach n,$(NFS),$(eval $(call nf_bpf_rule,$(n))))

$(BUILD)/%.skel.h: $(BUILD)/%.bpf.o
	@echo "  SKEL  $@"
	$(Q)$(BPFTOOL) gen skeleton $< name $(subst .bpf.o,,$(notdir $<))_bpf > $@.tmp && mv $@.tmp $@

$(BUILD)/obj/%.o: %.c $(HDRS) $(SKELS)
	@echo "  CC    $@"
	$(Q)mkdir -p $(dir $@)
	$(Q)$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/libsluice.a: $(LIB_OBJS)
	$(Q)ar rcs $@ $^

# The CLI: libsluice, and sluiced over its Unix socket (cmd/sluice/client.c,
# its own small HTTP/1.1 client; jansson for the JSON).
$(BUILD)/obj/cmd/sluice/%.o: cmd/sluice/%.c $(wildcard cmd/sluice/*.h) $(HDRS) $(SKELS)
	@echo "  CC    $@"
	$(Q)mkdir -p $(dir $@)
	$(Q)$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/sluice: $(CLI_OBJS) $(BUILD)/libsluice.a
	@echo "  LD    $@"
	$(Q)$(CC) $(CFLAGS) -o $@ $^ -ljansson $(LDLIBS)

# The daemon: REST/JSON over libsluice (libmicrohttpd, jansson).
DAEMON_LDLIBS := -lmicrohttpd -ljansson -lpthread
$(BUILD)/obj/cmd/sluiced/%.o: cmd/sluiced/%.c $(wildcard cmd/sluiced/*.h) $(HDRS) $(SKELS)
	@echo "  CC    $@"
	$(Q)mkdir -p $(dir $@)
	$(Q)$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/sluiced: $(DAEMON_OBJS) $(BUILD)/libsluice.a
	@echo "  LD    $@"
	$(Q)$(CC) $(CFLAGS) -o $@ $^ $(DAEMON_LDLIBS) $(LDLIBS)

# BPF_PROG_RUN golden-packet tests, linked against the production library.
$(BUILD)/tests/fw_progrun: nf/firewall/tests/fw_progrun.c tests/pktbuild.h tests/check.h tests/fw_text.h $(BUILD)/libsluice.a
	@echo "  CC    $@"
	$(Q)mkdir -p $(dir $@)
	$(Q)$(CC) $(CFLAGS) -Itests -o $@ $< $(BUILD)/libsluice.a $(LDLIBS)

# Capture and tracing through the pipeline (tests/obs_progrun.c).
$(BUILD)/tests/obs_progrun: tests/obs_progrun.c tests/pktbuild.h tests/check.h tests/fw_text.h $(BUILD)/libsluice.a
	@echo "  CC    $@"
	$(Q)mkdir -p $(dir $@)
	$(Q)$(CC) $(CFLAGS) -Itests -o $@ $< $(BUILD)/libsluice.a $(LDLIBS)

# The root's chain lookup (tests/pipeline_progrun.c).
$(BUILD)/tests/pipeline_progrun: tests/pipeline_progrun.c tests/pktbuild.h tests/check.h tests/fw_text.h $(BUILD)/libsluice.a
	@echo "  CC    $@"
	$(Q)mkdir -p $(dir $@)
	$(Q)$(CC) $(CFLAGS) -Itests -o $@ $< $(BUILD)/libsluice.a $(LDLIBS)

define nf_test_rule
$(BUILD)/tests/$(basename $(notdir $(1))): $(1) tests/pktbuild.h tests/check.h $(BUILD)/libsluice.a
	@echo "  CC    $$@"
	$(Q)mkdir -p $$(dir $$@)
	$(Q)$(CC) $(CFLAGS) -Itests -o $$@ $$< $(BUILD)/libsluice.a $(LDLIBS)
endef
$(foreach t,$(NF_TEST_SRCS),$(eval $(call nf_test_rule,$(t))))

# The rule parser and tree builder under AddressSanitizer and UBSan.
$(BUILD)/tests/fw_parse_asan: nf/firewall/tests/fw_parse.c $(NF_SRCS) lib/*.c $(HDRS) $(SKELS) tests/check.h
	@echo "  CC    $@ (ASan, UBSan)"
	$(Q)mkdir -p $(dir $@)
	$(Q)$(CC) $(CFLAGS) -O1 -fsanitize=address,undefined -fno-omit-frame-pointer \
		-fno-sanitize-recover=all -Itests -o $@ $< $(NF_SRCS) lib/*.c $(LDLIBS)

# The declarative configuration parser under AddressSanitizer and UBSan.
$(BUILD)/tests/config_unit_asan: tests/config_unit.c $(NF_SRCS) lib/*.c $(HDRS) $(SKELS) tests/check.h
	@echo "  CC    $@ (ASan, UBSan)"
	$(Q)mkdir -p $(dir $@)
	$(Q)$(CC) $(CFLAGS) -O1 -fsanitize=address,undefined -fno-omit-frame-pointer \
		-fno-sanitize-recover=all -Itests -o $@ $< $(NF_SRCS) lib/*.c $(LDLIBS)

# deps first, then the build: a fresh machine has no clang or bpftool yet.
test: deps
	$(Q)$(MAKE) --no-print-directory all
	$(Q)tests/run.sh

demo: deps
	$(Q)$(MAKE) --no-print-directory all
	$(Q)scripts/demo.sh

clean:
	rm -rf $(BUILD)

# Benchmarks: sluice and its peers side by side (see bench/README.md).
bench: deps
	$(Q)$(MAKE) --no-print-directory all
	$(Q)bench/run.sh full

bench-quick: deps
	$(Q)$(MAKE) --no-print-directory all
	$(Q)bench/run.sh quick

# Fuzzing (libFuzzer, clang): the configuration loader, parse only. Runs
# FUZZ_TIME seconds from the seeds in fuzz/corpus/config; new inputs go to
# build/fuzz/corpus/config, crashes to build/fuzz/crash-*.
FUZZ_TIME ?= 60
FUZZ_CFLAGS := -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
	-fno-omit-frame-pointer -std=gnu11 -I$(BUILD) -Ibpf/include -Ilib -iquote lib $(NF_INC)
$(BUILD)/fuzz/fuzz_config: fuzz/fuzz_config.c $(NF_SRCS) lib/*.c $(HDRS) $(SKELS)
	@echo "  CC    $@ (libFuzzer, ASan, UBSan)"
	$(Q)mkdir -p $(dir $@)
	$(Q)$(CLANG) $(FUZZ_CFLAGS) -o $@ $< $(NF_SRCS) lib/*.c $(LDLIBS)

# The daemon's REST request handling (route matching, query, body parsing,
# validation) without kernel state: the state is never opened.
$(BUILD)/fuzz/fuzz_api: fuzz/fuzz_api.c $(DAEMON_API_SRCS) cmd/sluiced/sluiced.h $(NF_SRCS) lib/*.c $(HDRS) $(SKELS)
	@echo "  CC    $@ (libFuzzer, ASan, UBSan)"
	$(Q)mkdir -p $(dir $@)
	$(Q)$(CLANG) $(FUZZ_CFLAGS) -o $@ $< $(DAEMON_API_SRCS) $(NF_SRCS) lib/*.c \
		$(DAEMON_LDLIBS) $(LDLIBS)

# Each target runs FUZZ_TIME seconds.
fuzz: $(BUILD)/fuzz/fuzz_config $(BUILD)/fuzz/fuzz_api
	$(Q)mkdir -p $(BUILD)/fuzz/corpus/config $(BUILD)/fuzz/corpus/api
	$(Q)$(BUILD)/fuzz/fuzz_config -max_total_time=$(FUZZ_TIME) -dict=fuzz/config.dict \
		-artifact_prefix=$(BUILD)/fuzz/ -print_final_stats=1 \
		$(BUILD)/fuzz/corpus/config fuzz/corpus/config
	$(Q)$(BUILD)/fuzz/fuzz_api -max_total_time=$(FUZZ_TIME) -dict=fuzz/api.dict \
		-artifact_prefix=$(BUILD)/fuzz/api- -print_final_stats=1 \
		$(BUILD)/fuzz/corpus/api fuzz/corpus/api
