#!/usr/bin/env bash
# Installs the programs that the test suite and scripts/kafka.sh need, from the
# Debian 12 (bookworm) apt sources. Safe to run again: when every program is
# already on PATH it exits without calling apt at all.
#
# Programs and the Debian packages that provide them:
#   kcat                 kcat
#   prometheus, promtool prometheus (only the binaries, its service stays off)
#   rg                   ripgrep
#   hyperfine            hyperfine
#   /usr/bin/time        time (GNU time: peak RSS in benches/compare.sh)
#   mvn                  maven (fetches the Kafka jars)
#   java 17 or newer     openjdk-17-jre-headless (runs the Kafka broker)
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
)
JAVA_PACKAGE=openjdk-17-jre-headless
PROMETHEUS_PORT=9090

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

main() {
  local missing
  mapfile -t missing < <(list_missing_packages | sort -u)
  if ((${#missing[@]} == 0)); then
    log "all test dependencies are installed"
    warn_if_prometheus_port_in_use
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
  warn_if_prometheus_port_in_use
  log "all test dependencies are installed"
}

main "$@"
