#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Installs every Debian package sluice needs to build, test and demo.
# Idempotent: when everything is already installed it returns at once.
set -euo pipefail

PKGS=(make gcc clang llvm libbpf-dev libelf-dev zlib1g-dev bpftool
      iproute2 iptables nftables iputils-ping netcat-openbsd
      python3 python3-scapy python3-yaml util-linux procps curl jq
      libmicrohttpd-dev libjansson-dev libyaml-dev libcurl4-openssl-dev
      libclang-rt-14-dev)  # libFuzzer and sanitizer runtimes for clang
# More packages, one file per NF or feature: words, '#' starts a comment.
for f in "$(dirname "$0")"/deps.d/*.txt; do
	[ -e "$f" ] || continue
	PKGS+=($(sed 's/#.*//' "$f"))
done

missing=()
for p in "${PKGS[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
		missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
	echo "deps: missing packages (${missing[*]}) and not root: run as root" >&2
	exit 1
fi
echo "deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
