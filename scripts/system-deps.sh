#!/usr/bin/env bash
# Installs the Debian packages rotasign needs: `run` (the local stack: softhsm2, openssl) or `test`
# (also chromium for the web console's browser tests, driven by Playwright, never a downloaded browser;
# and the platforms' own verifiers of signed files: osslsigncode for Authenticode, a JDK's jarsigner and
# keytool for JARs — the JDK is the largest, about 115 MB to download and 260 MB installed).
set -euo pipefail
purpose="${1:-test}"
missing=()
command -v softhsm2-util >/dev/null 2>&1 || missing+=(softhsm2)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
if [ "$purpose" = "test" ]; then
  command -v chromium >/dev/null 2>&1 || missing+=(chromium)
  command -v osslsigncode >/dev/null 2>&1 || missing+=(osslsigncode)
  { command -v jarsigner && command -v keytool; } >/dev/null 2>&1 || missing+=(default-jdk-headless)
fi
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing ${missing[*]} with apt-get"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  # Slim images leave out man page folders, where the JDK's post-install step links its pages.
  mkdir -p /usr/share/man/man1
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
else
  echo "rotasign needs these system packages: ${missing[*]}" >&2
  echo "install them first, e.g.: sudo apt-get install ${missing[*]}" >&2
  exit 1
fi
