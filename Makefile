# The two commands of the README:
#   make run    start consentryd on the embedded demo configuration
#   make test   run the whole test suite
# Both install what they need (Debian packages) and are idempotent.

CARGO     ?= cargo
DEMO_DIR  ?= .demo

.PHONY: run test deps build bench clean-demo

run: deps
	$(CARGO) build --bins
	./target/debug/consentryd --demo $(DEMO_DIR)

test: deps build
	$(CARGO) test --workspace --no-fail-fast

# One build profile for run and test, so the cache is shared (dependencies are
# optimised even in it; see Cargo.toml).
build:
	$(CARGO) build --workspace --bins --tests

deps:
	./.ci/install-deps

bench: deps
	$(CARGO) bench -p consentry-daemon --bench ingest

clean-demo:
	rm -rf $(DEMO_DIR)
