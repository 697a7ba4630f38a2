# Phony verbs only; CMake is the truth. `make test` and `make run` install what they need.
BUILD      ?= build
BUILD_ASAN ?= build-asan
JOBS       ?= $(shell nproc)
CMAKE_FLAGS ?=

.PHONY: deps build build-asan test test-unit test-asan test-integration run bench fuzz lint format clean

deps:
	@scripts/deps.sh

build: deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTSR_WERROR=ON $(CMAKE_FLAGS) >/dev/null
	cmake --build $(BUILD) -j $(JOBS)

build-asan: deps
	cmake -S . -B $(BUILD_ASAN) -DCMAKE_BUILD_TYPE=Debug -DTSR_SANITIZE=ON -DTSR_WERROR=ON $(CMAKE_FLAGS) >/dev/null
	cmake --build $(BUILD_ASAN) -j $(JOBS)

test-unit: build
	cd $(BUILD) && ctest -L unit --output-on-failure -j $(JOBS)

test-asan: build-asan
	cd $(BUILD_ASAN) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 ctest -L unit --output-on-failure -j $(JOBS)

test-integration: build
	cd $(BUILD) && ctest -L integration --output-on-failure

# Unit tests (normal and ASan+UBSan builds), then integration tests on a real local stack.
test: test-unit test-asan test-integration
	@echo "make test: all suites passed"

run: build
	TSR_BUILD_DIR=$(abspath $(BUILD)) deploy/local/stack run

bench: build
	bench/run-all.sh $(BUILD)

fuzz: deps
	scripts/fuzz.sh

lint:
	scripts/lint.sh

format:
	git ls-files -z --cached --others --exclude-standard -- 'cmd/*.[ch]' 'pkg/*.[ch]' 'tests/*.[ch]' 'bench/*.[ch]' | xargs -0 clang-format -i

clean:
	rm -rf $(BUILD) $(BUILD_ASAN)
