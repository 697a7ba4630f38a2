# Phony verbs only; CMake is the truth. `make test` and `make run` install what they need.
BUILD      ?= build
BUILD_ASAN ?= build-asan
JOBS       ?= $(shell nproc)
CMAKE_FLAGS ?=

.PHONY: deps build build-asan test test-unit test-asan test-integration run bench fuzz lint format clean web

deps:
	@scripts/deps.sh

build: deps web
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTSR_WERROR=ON $(CMAKE_FLAGS) >/dev/null
	cmake --build $(BUILD) -j $(JOBS)

# The browser app: web/ (TypeScript + React, Vite) into web/dist, which the local stack's nginx
# serves at "/". Rebuilt only when a source is newer than the last build.
web: deps
	@if [ ! -f web/dist/index.html ] || [ -n "$$(find web/src web/index.html web/package.json \
	    web/package-lock.json web/vite.config.ts web/tsconfig.json -newer web/dist/index.html \
	    -print -quit)" ]; then echo "web: npm run build"; cd web && npm run build --silent; \
	  else echo "web: up to date"; fi

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
