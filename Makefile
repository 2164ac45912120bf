# Thin front for CMake.  `make check` is the project's test command.
BUILD      ?= build
ASAN_BUILD ?= build-asan
JOBS       ?= $(shell nproc)
MAKEFLAGS  += --no-print-directory

.PHONY: all deps check check-fast check-asan demo bench clean

all: deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	@cmake --build $(BUILD) -j$(JOBS)

asan: deps
	@cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DMIC_SANITIZE=ON >/dev/null
	@cmake --build $(ASAN_BUILD) -j$(JOBS)

deps:
	@sh scripts/install-deps.sh

# Every test, in a normal build and under ASan+UBSan; closes with "N passed, N failed".
check: all asan
	@sh tests/run.sh $(BUILD) $(ASAN_BUILD)

# Normal build only, for quick iterations.
check-fast: all
	@sh tests/run.sh $(BUILD)

demo: all
	@sh scripts/demo.sh $(BUILD)

bench: all
	@sh scripts/bench.sh $(BUILD)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD)
