#!/usr/bin/env bash
# A stand-in for the CUDA base image, built from Debian's packages with debootstrap, for machines
# that reach Debian's mirror and PyPI but no image registry (so `nvidia/cuda:...` cannot be pulled).
#
#   container/standin_base.sh            -> prints the image tag, e.g. sd-turbo-standin-base:bookworm-1a2b3c4d5e6f
#   docker build -f container/Dockerfile --build-arg CUDA_BASE="$(container/standin_base.sh)" .
#
# It mimics what the Dockerfile relies on in nvidia/cuda:*-base-ubuntu24.04:
#   1. apt works (Debian bookworm, minbase + ca-certificates; python3 is 3.11 where Ubuntu 24.04 has 3.12),
#   2. a user with UID/GID 1000 already exists (`ubuntu`, as in every Ubuntu 24.04 image),
#   3. TLS works from build steps on this network, which inspects TLS: the host's CA bundle is added
#      to the system store (update-ca-certificates) and pip/requests are told to use that store
#      (pip otherwise trusts only its own certifi copy and fails with CERTIFICATE_VERIFY_FAILED).
# There is no CUDA in it: containers from it run on CPU, which is what the image test does.
#
# The image is tagged with a hash of this script and of the host's CA bundle, so it is rebuilt
# from scratch on a fresh machine or when either changes, and reused otherwise.
# Needs root (debootstrap, chroot) and a running Docker daemon.
# Environment: DEBIAN_MIRROR (default http://deb.debian.org/debian), HOST_CA_BUNDLE
# (default /etc/ssl/certs/ca-certificates.crt), STANDIN_FORCE=1 rebuilds even when the tag exists.
set -euo pipefail

SUITE=bookworm
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
HOST_CA_BUNDLE="${HOST_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}"
HERE="$(cd "$(dirname "$0")" && pwd)"

fingerprint="$(cat "$HERE/standin_base.sh" "$HOST_CA_BUNDLE" | sha256sum | cut -c1-12)"
TAG="sd-turbo-standin-base:${SUITE}-${fingerprint}"

log() { echo "[standin_base] $*" >&2; }

if [ "${STANDIN_FORCE:-0}" != "1" ] && docker image inspect "$TAG" >/dev/null 2>&1; then
    log "reusing $TAG"
    echo "$TAG"
    exit 0
fi

rootfs="$(mktemp -d /var/tmp/standin-rootfs.XXXXXX)"
cleanup() {
    # debootstrap may leave /proc or /sys mounted inside the rootfs when it fails half-way.
    for mounted in proc sys dev/pts; do
        umount -l "$rootfs/$mounted" 2>/dev/null || true
    done
    rm -rf --one-file-system "$rootfs"
}
trap cleanup EXIT

# 1. A minimal Debian with apt and the CA store.
started=$(date +%s)
log "debootstrap $SUITE from $MIRROR into $rootfs"
debootstrap --variant=minbase --include=ca-certificates "$SUITE" "$rootfs" "$MIRROR" >&2
cat > "$rootfs/etc/apt/sources.list" <<EOF
deb $MIRROR $SUITE main
deb $MIRROR $SUITE-updates main
deb ${MIRROR%/debian}/debian-security $SUITE-security main
EOF

# 2. The UID-1000 user every Ubuntu 24.04 image has.
chroot "$rootfs" groupadd --gid 1000 ubuntu
chroot "$rootfs" useradd --uid 1000 --gid 1000 --create-home --shell /bin/bash ubuntu

# 3. The host's CA bundle in the system store (kept across any later update-ca-certificates).
install -m 0644 "$HOST_CA_BUNDLE" "$rootfs/usr/local/share/ca-certificates/host-ca-bundle.crt"
chroot "$rootfs" update-ca-certificates >&2

# 4. Trim what a container image does not carry, then import it.
chroot "$rootfs" apt-get clean
rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/log/*.log "$rootfs"/var/cache/debconf/*-old
for mounted in proc sys dev/pts; do
    umount -l "$rootfs/$mounted" 2>/dev/null || true
done
tar --numeric-owner -C "$rootfs" -c . | docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt' \
    --change 'ENV REQUESTS_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt' \
    --change 'ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt' \
    --change "LABEL org.opencontainers.image.description=\"stand-in for nvidia/cuda base: Debian $SUITE, UID 1000 user, host CA trusted\"" \
    --change 'CMD ["/bin/bash"]' \
    - "$TAG" >&2
log "built $TAG in $(( $(date +%s) - started )) s"
echo "$TAG"
