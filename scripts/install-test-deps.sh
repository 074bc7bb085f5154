#!/usr/bin/env bash
# Installs the external peers Sluice's tests talk to: OpenSSH server and
# client, sftp-server, rsync, paramiko, asciinema, PuTTY's plink, dropbear's
# dbclient and git (interop tests), and
# PostgreSQL (the audit store's shared test suite). As root it installs them
# from Debian packages; otherwise it prints what to install.
set -euo pipefail
# One package a line, each with the tests that need it.
pkgs=(
  openssh-server       # interop: sshd as the target
  openssh-client       # interop: ssh, scp, sftp
  openssh-sftp-server  # interop: the target's sftp-server
  rsync                # interop: rsync over the gateway
  git                  # interop: git clone over a recorded service (gateway TestRecordRsyncAndGit)
  python3-paramiko     # interop: paramiko clients
  python3-asyncssh     # interop: asyncssh SFTP client (gateway TestSFTPSymlinkEnds)
  rclone               # interop: pkg/sftp client (gateway TestRcloneUploadDownload)
  asciinema            # replay of recordings (record TestWriteCast: sluice replay --asciicast)
  putty-tools          # interop: plink and puttygen, exit status before EOF (TestExitStatusPlink)
  dropbear-bin         # interop: dbclient and dropbearconvert, exit status before EOF (TestExitStatusDbclient)
  postgresql           # the audit store's shared suite
  systemd              # systemd-analyze verify of contrib/sluice.service
  iproute2             # bench --rtt: ip netns and the links of the WAN mode (bench only, not run by make test)
  e2fsprogs            # chattr: audit store made immutable (TestQueueRealStoreOutage, TestAuditOutageRecovers)
)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "missing test peers: ${missing[*]}" >&2
  echo "install them with: sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
