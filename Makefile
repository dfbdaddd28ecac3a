# nids: PostgreSQL extension (PGXS)
EXTENSION = nids
MODULE_big = nids
DATA = nids--1.0.sql
OBJS = \
	src/nids.o \
	src/model_doc.o \
	src/forest.o \
	src/iforest.o \
	src/vector.o \
	src/xgb.o \
	src/model_cache.o \
	src/catalog.o \
	src/scoring.o \
	src/canonical.o \
	src/preprocess.o \
	src/train_options.o \
	src/train.o \
	src/drift_reference.o \
	src/features.o \
	src/trigger.o \
	src/attach.o

PG_CONFIG ?= /usr/lib/postgresql/15/bin/pg_config
SHLIB_LINK += -lxgboost -lm
PG_CPPFLAGS += -I$(srcdir)/src
PG_CFLAGS += -Wall -Wextra -Werror -Wno-unused-parameter -Wno-missing-field-initializers -Wno-sign-compare -Wno-cast-function-type

REGRESS = import classify errors train train_errors scoring
REGRESS_OPTS = --inputdir=.

override with_llvm = no
PGXS := $(shell $(PG_CONFIG) --pgxs 2>/dev/null)
ifneq ($(wildcard $(PGXS)),)
include $(PGXS)
else
# Before scripts/setup has installed the server headers, only these work.
all install installcheck:
	@echo "PostgreSQL 15 server headers are missing: run scripts/setup (or make test)" >&2; exit 1
endif

.PHONY: test demo setup

setup:
	scripts/setup

# Everything CI does: install what is missing, build warning-free, run every
# pg_regress and pgTAP test on a throwaway cluster.
test: setup
	scripts/run-tests

demo: setup
	scripts/demo $(if $(DATA),--data "$(DATA)")
