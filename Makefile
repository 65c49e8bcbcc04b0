# otpstep — the two set-up commands are `make run` and `make test`.
GO ?= go
PKGS := ./...

.PHONY: run test test-short bench e2e lint build image chromium axe-core

## run: the server on SQLite (./otpstep.db) with a demo user and client, on 127.0.0.1:4444
run:
	$(GO) run ./cmd/otpstep serve --dev

## build: the binary in ./bin/otpstep
build:
	$(GO) build -buildvcs=auto -o bin/otpstep ./cmd/otpstep

## image: the container image otpstep:latest (Dockerfile: static binary on distroless, non-root)
image:
	docker build -t otpstep:latest .

## test: every test, with a summary that lists each skipped test and why (PostgreSQL tests skip with a
## message when none answers; CI=true makes them fail). It first fetches axe-core for the browser suite.
test: axe-core
	$(GO) mod tidy -diff
	$(GO) vet $(PKGS)
	@mkdir -p test-artifacts
	$(GO) tool gotestsum --format pkgname-and-test-fails --format-hide-empty-pkg --jsonfile test-artifacts/test.json -- -race -count=1 -timeout 30m $(PKGS)
	@echo 'slowest tests (over 20s):'; $(GO) tool gotestsum tool slowest --jsonfile test-artifacts/test.json --threshold 20s

## test-short: the quick subset
test-short:
	$(GO) test -short -count=1 $(PKGS)

## bench: load runs against PostgreSQL; prints figures, asserts no timings
bench:
	$(GO) run ./bench

## e2e: the real-browser tests (installs Debian's chromium when missing), the accessibility suite among them
e2e: chromium axe-core
	OTPSTEP_E2E=1 $(GO) test -count=1 -run E2E ./...

chromium:
	@command -v chromium >/dev/null 2>&1 || (apt-get update && apt-get install -y chromium)

## axe-core: node_modules/axe-core, exactly as package-lock.json pins it (test-only; not committed).
## Without npm the accessibility suite skips with a message (CI=true makes it fail).
axe-core: node_modules/axe-core/axe.min.js

node_modules/axe-core/axe.min.js: package.json package-lock.json
	@if command -v npm >/dev/null 2>&1; then \
		npm ci --no-audit --no-fund && touch $@; \
	else \
		echo "npm not found: the accessibility suite (TestE2E_AccessibilityOfEveryPage) will skip"; \
	fi

lint:
	gofmt -l . | tee /dev/stderr | (! read)
	$(GO) vet $(PKGS)
