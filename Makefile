# Thin front for CMake.  `make` only builds; `make check` is the project's
# test command.  The targets that run things (check, check-fast, demo, bench)
# first install the Debian packages they need (scripts/install-deps.sh, a
# no-op when all are present); `make deps` does only that.
BUILD      ?= build
ASAN_BUILD ?= build-asan
JOBS       ?= $(shell nproc)
MAKEFLAGS  += --no-print-directory

.PHONY: all asan deps check check-fast demo bench clean

HINT = { echo "make: cmake configure failed; missing packages? run 'make deps' (as root)" >&2; exit 1; }

all:
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null || $(HINT)
	@cmake --build $(BUILD) -j$(JOBS)

asan:
	@cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DMIC_SANITIZE=ON >/dev/null || $(HINT)
	@cmake --build $(ASAN_BUILD) -j$(JOBS)

deps:
	@sh scripts/install-deps.sh

# The packages first, then the builds: a sub-make, so that `make -j check`
# cannot start cmake before apt has finished.
# Every test, in a normal build and under ASan+UBSan; closes with "N passed, N failed".
check: deps
	@$(MAKE) all asan
	@sh tests/run.sh $(BUILD) $(ASAN_BUILD)

# Normal build only, for quick iterations.
check-fast: deps
	@$(MAKE) all
	@sh tests/run.sh $(BUILD)

demo: deps
	@$(MAKE) all
	@sh scripts/demo.sh $(BUILD)

bench: deps
	@$(MAKE) all
	@sh scripts/bench.sh $(BUILD) $(BENCH)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD)
