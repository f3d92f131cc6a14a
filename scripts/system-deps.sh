#!/usr/bin/env bash
# Installs the real peers the interop tests run against, from Debian's packages, when missing.
set -euo pipefail
need=()
command -v sipp >/dev/null 2>&1 || need+=(sip-tester)
command -v kamailio >/dev/null 2>&1 || need+=(kamailio)
# The TLS module has no command of its own: look for the module file.
[ -e /usr/lib/x86_64-linux-gnu/kamailio/modules/tls.so ] || need+=(kamailio-tls-modules)
command -v baresip >/dev/null 2>&1 || need+=(baresip-core)
# The SRTP interop tests load baresip's srtp module (SDES), which baresip-core ships.
[ -e /usr/lib/baresip/modules/srtp.so ] || need+=(baresip-core)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v firefox-esr >/dev/null 2>&1 || need+=(firefox-esr)
# Headless Firefox runs WebAudio only with an audio output: the Firefox test starts its own
# PulseAudio with a null sink.
command -v pulseaudio >/dev/null 2>&1 || need+=(pulseaudio)
# The HTTPS test's client.
command -v curl >/dev/null 2>&1 || need+=(curl)
# The attacker's view: sipvicious' svmap and svwar scan the SIP port (security tests, loopback only).
command -v svmap >/dev/null 2>&1 || need+=(sipvicious)
# scripts/cluster.sh checks its ports are free with ss.
command -v ss >/dev/null 2>&1 || need+=(iproute2)
# The shared-store tests start their own PostgreSQL server (initdb and pg_ctl from this package).
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || need+=(postgresql)
# The monitoring test scrapes a running Trunkline with Prometheus and checks the alert rules with
# promtool (same package).
{ command -v prometheus && command -v promtool; } >/dev/null 2>&1 || need+=(prometheus)
# The SIP trace tests open the pcap of a call with tshark, and capture HEP with sngrep.
command -v tshark >/dev/null 2>&1 || need+=(tshark)
command -v sngrep >/dev/null 2>&1 || need+=(sngrep)
# The recording tests decode what Trunkline wrote with tools nobody here wrote: opusdec and sox.
command -v opusdec >/dev/null 2>&1 || need+=(opus-tools)
command -v sox >/dev/null 2>&1 || need+=(sox)
[ ${#need[@]} -eq 0 ] && exit 0
echo "installing Debian packages: ${need[*]}"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
$SUDO apt-get update
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends "${need[@]}"
