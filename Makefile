# gilio — the front door. On a fresh Debian bookworm machine with nothing but a compiler:
#   make demo    builds and runs the lesson examples (the tour)
#   make test    builds and runs the whole suite: plain, ASan+UBSan, and TSan for the GIL layer
#   make bench   builds and runs the benchmarks and the comparisons with CPython and the peers
# Each installs the Debian packages it needs first (apt-get, through sudo when not root).
SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -ec

BUILD_PACKAGES := g++ cmake make pkg-config liburing-dev libfmt-dev libgtest-dev libssl-dev openssl
BENCH_PACKAGES := libbenchmark-dev libboost-fiber-dev python3 python3-uvloop python3-matplotlib
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
JOBS ?= $(shell nproc)
CTEST := ctest --output-on-failure --timeout 300 -j $(JOBS)
# The interpreter the Python peers run on: Debian's, where python3-uvloop is installed.
PYTHON ?= /usr/bin/python3

.PHONY: all deps deps-bench build demo test test-plain test-asan test-tsan bench clean

all: build

define install_missing
missing=""; for p in $(1); do \
  dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
done; \
if [ -n "$$missing" ]; then \
  echo "== installing Debian packages:$$missing"; \
  $(SUDO) apt-get update -qq; \
  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
fi
endef

deps:
	@$(call install_missing,$(BUILD_PACKAGES))

deps-bench: deps
	@$(call install_missing,$(BENCH_PACKAGES))

build: deps
	cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo > /dev/null
	cmake --build build -j $(JOBS)

demo: build
	@bash examples/tour.sh build/examples

test: test-plain test-asan test-tsan
	@echo "make test: all suites passed (plain, ASan+UBSan, TSan)"

test-plain: build
	cd build && $(CTEST)

test-asan: deps
	cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DGILIO_SANITIZE=address > /dev/null
	cmake --build build-asan -j $(JOBS)
	cd build-asan && $(CTEST)

test-tsan: deps
	cmake -S . -B build-tsan -DCMAKE_BUILD_TYPE=Debug -DGILIO_SANITIZE=thread \
	  -DGILIO_BUILD_EXAMPLES=OFF > /dev/null
	cmake --build build-tsan -j $(JOBS)
	cd build-tsan && $(CTEST) -L 'gil|threads'

bench: deps-bench
	cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DGILIO_BUILD_BENCH=ON > /dev/null
	cmake --build build -j $(JOBS)
	$(PYTHON) bench/run.py --build build $(if $(QUICK),--quick,)

clean:
	rm -rf build build-asan build-tsan
