#!/usr/bin/env bash
# Installs the system packages the tests and the local stack need: Debian's softhsm2 and openssl,
# chromium for the web console's browser tests (driven by Playwright; never a downloaded browser), and
# the platforms' own verifiers of signed files: osslsigncode (Authenticode) and a JDK's jarsigner and
# keytool (JAR). The JDK is the largest: about 115 MB to download, 260 MB installed.
set -euo pipefail
missing=()
command -v softhsm2-util >/dev/null 2>&1 || missing+=(softhsm2)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v osslsigncode >/dev/null 2>&1 || missing+=(osslsigncode)
{ command -v jarsigner && command -v keytool; } >/dev/null 2>&1 || missing+=(default-jdk-headless)
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
