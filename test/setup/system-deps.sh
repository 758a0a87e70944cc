#!/usr/bin/env bash
# Installs the Debian packages the tests need when they are missing: softhsm2 (a real PKCS#11
# token for the HSM backend tests) and openssl (test CAs and CRLs). Runs before `npm test` (package.json "pretest") and in CI.
set -euo pipefail

missing=()
command -v softhsm2-util >/dev/null 2>&1 || missing+=(softhsm2)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO=sudo; else
    echo "The tests need these Debian packages: ${missing[*]}. Install them (apt-get install ${missing[*]}) and run the tests again." >&2
    exit 1
  fi
else
  SUDO=
fi
echo "Installing test dependencies from Debian: ${missing[*]}" >&2
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
