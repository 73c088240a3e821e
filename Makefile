# Ferry's commands. `make run` starts a single node; `make check` is what CI runs.

CARGO ?= cargo

.PHONY: run check fmt lint build test deps deploy-check bench bench-backlog bench-etl chaos

## Start ferryd on the embedded default: one node, data under ./data, 127.0.0.1:7070.
run: deps
	$(CARGO) run --release --bin ferryd -- --data-dir ./data --listen 127.0.0.1:7070

## Everything CI checks: formatting, lints (warnings are errors) and every test.
check: deps fmt lint test

deps:
	@scripts/ensure-build-deps

fmt:
	$(CARGO) fmt --all -- --check

lint:
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings

build:
	$(CARGO) build --workspace --all-targets --locked

# The black-box tests start the real binaries, so build them first. Every step
# uses --all-targets so all share one feature set, hence one RocksDB build.
test: build
	$(CARGO) test --workspace --locked
	# Each Criterion benchmark once, as a smoke (figures come from `make bench`).
	# --workspace keeps the feature set of the steps above: selecting one
	# package changes its build dependencies' features and rebuilds RocksDB.
	$(CARGO) test --workspace --locked --bench hot_paths --bench close

## deploy/ exercised (`make test` runs it too, as tests/tests/deploy.rs): the
## systemd unit, the image, the compose file and the Kubernetes manifests
## linted, then run against the built binaries. PARTS="kubernetes" picks parts.
deploy-check: deps build
	scripts/check-deploy $(PARTS)

## `ferry bench` figures on 1-node and 3-node clusters started for the run
## (release build; COUNT messages per run), the same against NATS JetStream
## R1 and R3 when nats-server is installed, then the Criterion benchmarks of
## the server's hot paths (encoding, apply, key codecs).
## DATA_GROUPS="0 4" runs each Ferry cluster once per number of data groups
## (default ferryd's own, 30; 0 is a cluster formed before data groups);
## PARTITIONS sets the runs' topics' partitions.
DATA_GROUPS ?= 30
PARTITIONS ?= 1
bench: deps
	$(CARGO) build --release --bin ferryd --bin ferry --bin nats-bench
	DATA_GROUPS="$(DATA_GROUPS)" PARTITIONS="$(PARTITIONS)" scripts/bench-clusters $(COUNT)
	$(CARGO) bench -p ferry-server --bench hot_paths

## Memory against backlog, and catch-up: GB gigabytes of SIZE-byte messages
## published to one subscription's topic on a NODES-node cluster, then
## drained with acks; prints the publish and catch-up rates, the most disk
## used and the nodes' highest peak RSS.
bench-backlog: deps
	$(CARGO) build --release --bin ferryd --bin ferry
	scripts/bench-backlog

## ferry-etl throughput: COUNT events drained by one worker into Avro on
## local disk; events/s over wall time and per CPU second of the worker.
## Then the close of an hour (Criterion): staged files merged into parts.
bench-etl: deps
	$(CARGO) build --release --bin ferryd --bin ferry --bin ferry-etl
	scripts/bench-etl
	$(CARGO) bench -p ferry-etl --bench close

## The fault harness's full matrix (release build): every nemesis profile ×
## SEEDS seeds × 3 and 5 nodes, TIME of faults each; prints a summary table.
## DATA_GROUPS="0 4" runs it on clusters formed with each number of data groups
## (default 30, as bench).
## CI runs a short smoke of it as `jepsen/tests/runs.rs`.
chaos: deps
	$(CARGO) build --release --bin ferryd --bin ferry-jepsen
	DATA_GROUPS="$(DATA_GROUPS)" scripts/chaos
