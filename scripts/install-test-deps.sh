#!/usr/bin/env bash
# Installs the external peers Sluice's tests talk to: OpenSSH server and
# client, sftp-server, rsync, paramiko, asyncssh, asciinema, PuTTY's plink,
# psftp and pscp, dropbear, lftp, curl and git (interop tests), and
# PostgreSQL (the audit store's shared test suite), chromium with node and
# playwright-core (the console's browser test), oidc-provider (the single
# sign-on tests). As root it installs them from Debian packages (and npm);
# otherwise it prints what to install.
set -euo pipefail
# One package a line, each with the tests that need it.
pkgs=(
  openssh-server       # interop: sshd as the target
  openssh-client       # interop: ssh, scp, sftp
  openssh-sftp-server  # interop: the target's sftp-server
  rsync                # interop: rsync over the gateway
  git                  # interop: git clone over a recorded service (gateway TestRecordRsyncAndGit)
  python3-paramiko     # interop: paramiko clients
  python3-asyncssh     # interop: asyncssh SFTP client and server (gateway TestSFTPSymlinkEnds, TestSFTPInterop)
  rclone               # interop: pkg/sftp client (gateway TestRcloneUploadDownload)
  asciinema            # replay of recordings (record TestWriteCast: sluice replay --asciicast)
  putty-tools          # interop: plink and puttygen, exit status before EOF (TestExitStatusPlink); psftp and pscp (TestSFTPInterop)
  dropbear-bin         # interop: dbclient, exit status before EOF (TestExitStatusDbclient); dropbear as the SFTP upstream (TestSFTPInterop)
  lftp                 # interop: lftp's SFTP client (gateway TestSFTPInterop)
  curl                 # interop: libssh2's scp:// and sftp:// (gateway TestSFTPInterop, TestRefusalsEveryClientSees); HTTP and HTTPS through ssh -L (TestForwardBySNIAndHost)
  postgresql           # the audit store's shared suite; psql through a forward (gateway TestForwardAuditsHTTPHostAndPostgres)
  systemd              # systemd-analyze verify of contrib/sluice.service
  chromium             # the console's browser test (cmd/sluice TestConsoleBrowser), driven by playwright-core
  nodejs               # runs that browser test's script (internal/console/e2e) and the OpenID provider of the OIDC tests (internal/oidc/testdata/idp)
  npm                  # installs playwright-core and oidc-provider for them, and scripts/console-assets.sh
  iproute2             # bench --rtt: ip netns and the links of the WAN mode (bench only); ip netns and veth of gateway TestTransparentNetns
  iptables             # REDIRECT into the gateway in gateway TestTransparentNetns (transparent routing)
  e2fsprogs            # chattr: audit store made immutable (TestQueueRealStoreOutage, TestAuditOutageRecovers)
  zsh                  # sluice completion zsh (cmd/sluice TestZshCompletion)
  haproxy              # the load balancer in front of a fleet, PROXY v2 and /readyz checks (cmd/sluice TestFleetHAProxy)
)
# playwright-core for the console's browser test, and oidc-provider, the
# OpenID provider of the single sign-on tests (internal/oidc/oidctest),
# each pinned by its lock file.
install_e2e() {
  local root
  root="$(cd "$(dirname "$0")/.." && pwd)"
  if command -v npm >/dev/null && [ ! -d "$root/internal/console/e2e/node_modules/playwright-core" ]; then
    npm ci --prefix "$root/internal/console/e2e" --no-audit --no-fund
  fi
  if command -v npm >/dev/null && [ ! -d "$root/internal/oidc/testdata/idp/node_modules/oidc-provider" ]; then
    npm ci --prefix "$root/internal/oidc/testdata/idp" --no-audit --no-fund
  fi
}
missing=()
for p in "${pkgs[@]}"; do
  # A machine may bring Node.js and npm from elsewhere (NodeSource's nodejs
  # bundles npm and conflicts with Debian's): the commands are what counts.
  case "$p" in
    nodejs) command -v node >/dev/null && continue ;;
    npm) command -v npm >/dev/null && continue ;;
  esac
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  install_e2e
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
install_e2e
