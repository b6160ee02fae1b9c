#!/usr/bin/env bash
# Installs the programs that the test suite and scripts/kafka.sh need, from the
# Debian 12 (bookworm) apt sources, the Go module proxy and PyPI. Safe to run
# again: a program already on PATH is not installed again, and when every apt
# program is there apt is not called at all.
#
# Programs and the Debian packages that provide them:
#   kcat                 kcat
#   prometheus, promtool prometheus (only the binaries, its service stays off)
#   rg                   ripgrep
#   hyperfine            hyperfine
#   /usr/bin/time        time (GNU time: peak RSS in benches/compare.sh)
#   mvn                  maven (fetches the Kafka jars)
#   java 17 or newer     openjdk-17-jre-headless (runs the Kafka broker)
#   systemd-analyze      systemd (checks deploy/systemd)
#   g++, make            g++, make (build librdkafka and libFuzzer)
#   pkg-config           pkg-config (finds OpenSSL for librdkafka)
#   OpenSSL headers      libssl-dev (librdkafka's TLS support)
#
# And for the fuzz targets in fuzz/:
#   nightly toolchain    rustup toolchain install nightly --profile minimal
#   cargo fuzz           cargo install cargo-fuzz --version 0.13.2 --locked
#
# And for the checks of deploy/:
#   helm                 built by `go install` into $HOME/go/bin (Go must be
#                        installed); it took 2 min 8 s once on 2 cores
#   kubernetes-validate  the PyPI package, installed by python3's pip
set -euo pipefail

# Program on PATH -> Debian package that installs it.
declare -A PACKAGE_OF=(
  [kcat]=kcat
  [prometheus]=prometheus
  [promtool]=prometheus
  [rg]=ripgrep
  [hyperfine]=hyperfine
  [/usr/bin/time]=time
  [mvn]=maven
  [systemd-analyze]=systemd
  [g++]=g++
  [make]=make
  [pkg-config]=pkg-config
)
JAVA_PACKAGE=openjdk-17-jre-headless
PROMETHEUS_PORT=9090
HELM_MODULE=helm.sh/helm/v3/cmd/helm
HELM_VERSION=v3.21.4
HELM_BIN_DIR="$HOME/go/bin"
KUBERNETES_VALIDATE_VERSION=1.37.0
CARGO_FUZZ_VERSION=0.13.2

log() {
  printf 'setup-test-deps.sh: %s\n' "$*" >&2
}

die() {
  printf 'setup-test-deps.sh: error: %s\n' "$*" >&2
  exit 1
}

# Prints the major version of `java` on PATH, or nothing if java is missing or
# prints no version.
java_major_version() {
  local output
  output="$(java -version 2>&1)" || return 0
  # `java -version` prints e.g.: openjdk version "17.0.15" 2025-04-15
  if [[ "$output" =~ \ version\ \"([0-9]+) ]]; then
    printf '%s\n' "${BASH_REMATCH[1]}"
  fi
}

java_is_17_or_newer() {
  local major
  major="$(java_major_version)"
  [[ -n "$major" && "$major" -ge 17 ]]
}

# Prints the packages to install, one per line, without duplicates.
list_missing_packages() {
  local program
  for program in "${!PACKAGE_OF[@]}"; do
    command -v "$program" >/dev/null 2>&1 || printf '%s\n' "${PACKAGE_OF[$program]}"
  done
  java_is_17_or_newer || printf '%s\n' "$JAVA_PACKAGE"
  # A library, not a program: its header shows that it is installed.
  [[ -f /usr/include/openssl/ssl.h ]] || printf '%s\n' libssl-dev
}

# Runs a command as root, through sudo when the script runs as another user.
as_root() {
  if ((EUID == 0)); then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo "$@"
  else
    die "installing packages needs root, and sudo is not installed; run this script as root"
  fi
}

require_packages_in_apt_sources() {
  local package
  for package in "$@"; do
    # `apt-cache show` exits 0 for a purely virtual package, but then prints
    # no Version field.
    apt-cache show --no-all-versions "$package" 2>/dev/null | grep -q '^Version:' ||
      die "package '$package' not found in the apt sources; this script expects Debian 12 (bookworm) with its main archive in /etc/apt/sources.list(.d)"
  done
}

# Installs the packages while /usr/sbin/policy-rc.d forbids starting services,
# so that the prometheus package does not start its server on port 9090. A
# policy-rc.d that already exists is left as it is.
install_without_starting_services() {
  local policy=/usr/sbin/policy-rc.d
  local created_policy=false
  if [[ ! -e "$policy" ]]; then
    # To invoke-rc.d and deb-systemd-invoke, exit status 101 means "action forbidden".
    printf '#!/bin/sh\nexit 101\n' | as_root tee "$policy" >/dev/null
    as_root chmod 755 "$policy"
    created_policy=true
  fi
  local status=0
  as_root env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y --no-install-recommends "$@" || status=$?
  if [[ "$created_policy" == true ]]; then
    as_root rm -f "$policy"
  fi
  ((status == 0)) || die "apt-get install failed for: $* (exit status $status)"
}

# Turns the prometheus service off where systemd runs, because the package
# enables it for the next boot even when policy-rc.d keeps it from starting now.
disable_prometheus_service() {
  [[ -d /run/systemd/system ]] || return 0
  as_root systemctl disable --now prometheus.service >/dev/null 2>&1 ||
    log "could not disable prometheus.service; run 'systemctl disable --now prometheus.service' by hand"
}

warn_if_prometheus_port_in_use() {
  if (exec 3<>"/dev/tcp/127.0.0.1/${PROMETHEUS_PORT}") 2>/dev/null; then
    log "warning: something listens on 127.0.0.1:${PROMETHEUS_PORT}, the port that tests may give their own prometheus; find it with 'ss -ltnp sport = :${PROMETHEUS_PORT}' and stop it"
  fi
}

verify_installed() {
  local program
  for program in "${!PACKAGE_OF[@]}"; do
    command -v "$program" >/dev/null 2>&1 ||
      die "'$program' is still not on PATH after installing package '${PACKAGE_OF[$program]}'"
  done
  java_is_17_or_newer ||
    die "java on PATH is version '$(java_major_version)', not 17 or newer, after installing $JAVA_PACKAGE; select Java 17 with 'update-alternatives --config java' or put its bin directory first on PATH"
}

# Builds helm from the Go module proxy into $HELM_BIN_DIR, where the deploy
# tests look for it when it is not on PATH.
install_helm() {
  if command -v helm >/dev/null 2>&1 || [[ -x "$HELM_BIN_DIR/helm" ]]; then
    return 0
  fi
  command -v go >/dev/null 2>&1 ||
    die "helm is missing and go is not installed; install Go, or put helm ${HELM_VERSION} on PATH"
  log "building helm ${HELM_VERSION} with go install into $HELM_BIN_DIR"
  GOBIN="$HELM_BIN_DIR" go install "${HELM_MODULE}@${HELM_VERSION}" ||
    die "go install ${HELM_MODULE}@${HELM_VERSION} failed (output above)"
}

install_kubernetes_validate() {
  if command -v kubernetes-validate >/dev/null 2>&1; then
    return 0
  fi
  log "installing kubernetes-validate ${KUBERNETES_VALIDATE_VERSION} with pip"
  python3 -m pip install --quiet --disable-pip-version-check \
    "kubernetes-validate==${KUBERNETES_VALIDATE_VERSION}" ||
    die "pip install kubernetes-validate==${KUBERNETES_VALIDATE_VERSION} failed (output above)"
  # pyenv makes the shim of a new script only on rehash.
  if command -v pyenv >/dev/null 2>&1; then
    pyenv rehash
  fi
  command -v kubernetes-validate >/dev/null 2>&1 ||
    die "kubernetes-validate was installed but is not on PATH; add the scripts directory of python3's pip to PATH"
}

# Installs what `cargo +nightly fuzz` needs: libFuzzer's instrumentation
# flags exist only on a nightly toolchain.
install_fuzz_tools() {
  command -v rustup >/dev/null 2>&1 ||
    die "rustup not found; the fuzz targets need it to install the nightly toolchain"
  if ! rustup run nightly rustc --version >/dev/null 2>&1; then
    log "installing the nightly Rust toolchain for cargo fuzz"
    rustup toolchain install nightly --profile minimal ||
      die "nightly Rust toolchain missing and 'rustup toolchain install nightly' failed (output above)"
  fi
  if [[ "$(cargo fuzz --version 2>/dev/null)" != "cargo-fuzz ${CARGO_FUZZ_VERSION}" ]]; then
    log "installing cargo-fuzz ${CARGO_FUZZ_VERSION} with cargo install"
    cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked ||
      die "cargo-fuzz ${CARGO_FUZZ_VERSION} missing and 'cargo install cargo-fuzz' failed (output above)"
  fi
}

install_apt_packages() {
  local missing
  mapfile -t missing < <(list_missing_packages | sort -u)
  if ((${#missing[@]} == 0)); then
    return 0
  fi

  command -v apt-get >/dev/null 2>&1 ||
    die "missing packages (${missing[*]}) and apt-get not found; this script supports Debian 12 only, so install them by hand"

  log "installing: ${missing[*]}"
  as_root apt-get update || die "apt-get update failed (output above); check the apt sources in /etc/apt"
  require_packages_in_apt_sources "${missing[@]}"
  install_without_starting_services "${missing[@]}"
  if [[ " ${missing[*]} " == *" prometheus "* ]]; then
    disable_prometheus_service
  fi

  verify_installed
}

main() {
  install_apt_packages
  install_helm
  install_kubernetes_validate
  install_fuzz_tools
  warn_if_prometheus_port_in_use
  log "all test dependencies are installed"
}

main "$@"
