# nids: PostgreSQL extension (PGXS)
EXTENSION = nids
MODULE_big = nids
# "make demo DATA=dir" names a directory of CSVs; PGXS's DATA stays ours
DEMO_DATA := $(if $(filter command line,$(origin DATA)),$(DATA))
override DATA = nids--1.0.sql nids--1.0--1.1.sql nids--1.1--1.2.sql nids--1.2--1.3.sql
OBJS = \
	src/nids.o \
	src/random.o \
	src/report.o \
	src/xgb.o \
	src/flow_names.o \
	src/flow_map.o \
	src/flow_reader.o \
	src/model_doc.o \
	src/model_convert.o \
	src/model_eval.o \
	src/model_format.o \
	src/model_iforest.o \
	src/model_novelty.o \
	src/model_shap.o \
	src/model_bundle.o \
	src/model_catalog.o \
	src/model_cache.o \
	src/train.o \
	src/train_data.o \
	src/train_preprocess.o \
	src/train_options.o \
	src/train_report.o \
	src/train_attach.o \
	src/train_adapt.o \
	src/train_adapt_local.o \
	src/train_adapt_report.o \
	src/train_novelty.o \
	src/drift_reference.o \
	src/drift_stats.o \
	src/drift.o \
	src/drift_schedule.o \
	src/drift_health.o \
	src/drift_merge.o \
	src/scoring.o \
	src/scoring_at.o \
	src/trigger.o \
	src/explain.o \
	src/explain_verdict.o \
	src/admin.o \
	src/alert_community_id.o \
	src/alert_reader.o \
	src/alert_lock.o \
	src/alert_incident.o \
	src/scan_detector.o \
	src/scan_trigger.o

# scripts/setup installs PostgreSQL 15; any pg_config on the PATH, or
# PG_CONFIG=..., builds against another installation
PG_CONFIG ?= pg_config
SHLIB_LINK += -lxgboost -lm
PG_CPPFLAGS += -I$(srcdir)/src
PG_CFLAGS += -Wall -Wextra -Werror -Wno-unused-parameter -Wno-missing-field-initializers -Wno-sign-compare -Wno-cast-function-type

# the tree walks: -O3 vectorises the input's doubling and the per-class
# sums (class by class, in tree order: the same bits), about 9% of a
# prediction (bench/scoring.sh)
src/model_eval.o: override CFLAGS += -O3

SCRIPTS_built = tools/nids-load/nids-load tools/nids-alerts/nids-alerts tools/nids-flowmeter/nids-flowmeter
EXTRA_CLEAN = $(SCRIPTS_built) tools/nids-flowmeter/shortest.o

# every sql/NN_name.sql runs, in the order of its number: a new file cannot
# be left out by forgetting to list it
REGRESS = $(sort $(basename $(notdir $(wildcard $(srcdir)/sql/*.sql))))
REGRESS_OPTS = --inputdir=.

override with_llvm = no
PGXS := $(shell $(PG_CONFIG) --pgxs 2>/dev/null)
ifneq ($(wildcard $(PGXS)),)
include $(PGXS)

# PGXS does not track headers: every object depends on all of ours, so
# editing a struct can never leave an object built with its old layout
$(OBJS): $(wildcard $(srcdir)/src/*.h)
else
# Before scripts/setup has installed the server headers, only these work.
all install installcheck:
	@echo "PostgreSQL 15 server headers are missing: run scripts/setup (or make test)" >&2; exit 1
endif

.PHONY: test demo demo-cluster setup install-nids-load-link fuzz valgrind

# libFuzzer harnesses for every deserializer and converter (clang-14);
# FUZZ_RUNS executions each, 10 million by default
fuzz:
	$(MAKE) -C fuzz all run FUZZ_RUNS=$(or $(FUZZ_RUNS),10000000)

# the regression suite against a server under valgrind memcheck
valgrind: setup
	scripts/valgrind-tests

# the client programs, each in its folder under tools/, sharing tools/common
# (libpq, table and column-name code) and src/flow_names.c (the canonical
# names) with the extension
PG_INCLUDEDIR = $(shell $(PG_CONFIG) --includedir)
TOOLS_COMMON = tools/common/pgtools.c src/flow_names.c
TOOLS_CFLAGS = -O2 -g -Wall -Wextra -Werror -DFRONTEND -I$(srcdir)/src -I$(srcdir)/tools/common -I$(PG_INCLUDEDIR)
TOOLS_DEPS = $(TOOLS_COMMON) tools/common/pgtools.h src/flow.h

# nids-load: CICFlowMeter CSV files into a table
tools/nids-load/nids-load: tools/nids-load/nids-load.c $(TOOLS_DEPS)
	$(CC) $(TOOLS_CFLAGS) -o $@ tools/nids-load/nids-load.c $(TOOLS_COMMON) -lpq -lz

# nids-alerts: a libpq client writing incidents as Suricata EVE lines
tools/nids-alerts/nids-alerts: tools/nids-alerts/nids-alerts.c $(TOOLS_DEPS)
	$(CC) $(TOOLS_CFLAGS) -o $@ tools/nids-alerts/nids-alerts.c $(TOOLS_COMMON) -lpq

# nids-flowmeter: packets to flows (libpcap)
METER_SRCS = $(wildcard $(srcdir)/tools/nids-flowmeter/*.c)
tools/nids-flowmeter/shortest.o: tools/nids-flowmeter/shortest.cc
	g++ -O2 -g -Wall -Wextra -Werror -c -o $@ $<
tools/nids-flowmeter/nids-flowmeter: $(METER_SRCS) $(wildcard $(srcdir)/tools/nids-flowmeter/*.h) $(TOOLS_DEPS) tools/nids-flowmeter/shortest.o
	$(CC) $(TOOLS_CFLAGS) -o $@ $(METER_SRCS) $(TOOLS_COMMON) tools/nids-flowmeter/shortest.o \
		-ldouble-conversion -lstdc++ -lpcap -lpq -lm

# also on the PATH, where /usr/local/bin is writable
install: install-nids-load-link
install-nids-load-link:
	@if [ -z "$(DESTDIR)" ] && [ -w /usr/local/bin ]; then \
		ln -sf '$(bindir)/nids-load' /usr/local/bin/nids-load; \
		ln -sf '$(bindir)/nids-alerts' /usr/local/bin/nids-alerts; \
		ln -sf '$(bindir)/nids-flowmeter' /usr/local/bin/nids-flowmeter; fi

setup:
	scripts/setup

# Everything CI does: install what is missing, build warning-free, run every
# pg_regress and pgTAP test on a throwaway cluster.
test: setup
	scripts/run-tests

# make demo-cluster: a coordinator and N shards (scripts/cluster; SHARDS=n)
demo-cluster: setup
	scripts/cluster $(or $(SHARDS),2)

# make demo: the real sample in data/; DATA=dir: CSVs from dir; GENERATED=1: generated flows
demo:
	scripts/demo $(if $(DEMO_DATA),--data "$(DEMO_DATA)",$(if $(GENERATED),--generated))
