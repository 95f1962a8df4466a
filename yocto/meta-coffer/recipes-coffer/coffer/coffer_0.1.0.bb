# nooelint: oelint.var.mandatoryvar.HOMEPAGE,oelint.var.suggestedvar.BUGTRACKER,oelint.var.bbclassextend
# No HOMEPAGE or BUGTRACKER: the project has none public yet, and the layer
# lives in its repository. No BBCLASSEXTEND: a service for the appliance's
# target only, with no native or SDK use.
SUMMARY = "File-transfer appliance service (SFTP/SCP, HTTPS) with strong MFA"
DESCRIPTION = "Coffer serves files over SFTP/SCP and HTTPS from one process, \
               with TOTP (replay-protected), recovery codes, access tokens, lockout \
               and IP filters, and TOTP seeds sealed by the box's TPM 2.0."
SECTION = "net"
LICENSE = "Apache-2.0"
LIC_FILES_CHKSUM = "file://Cargo.toml;beginline=7;endline=7;md5=2507bd5f0713f05419cd2f22fa06fe62"

# The sources are the repository this layer lives in (yocto/meta-coffer is
# two levels below its top): kas pins that checkout like every other layer,
# and the local files' checksums key the build.
COFFER_TOPDIR := "${@os.path.normpath(os.path.join(d.getVar('THISDIR'), '..', '..', '..', '..'))}"
# A recipe whose sources are its own layer's repository finds them through
# FILESEXTRAPATHS; no bbappend could say where that repository is.
# nooelint: oelint.vars.fileextrapaths
FILESEXTRAPATHS:prepend := "${COFFER_TOPDIR}:"

# The crates Cargo.lock names, generated (never edited by hand): run
# yocto/scripts/gen-crates-inc, or `bitbake -c update_crates coffer`;
# yocto/scripts/check-crates-inc checks it in CI.
require ${BPN}-crates.inc

SRC_URI += "file://Cargo.toml;subdir=coffer \
            file://Cargo.lock;subdir=coffer \
            file://build.rs;subdir=coffer \
            file://src;subdir=coffer \
            file://crates;subdir=coffer \
            file://systemd;subdir=coffer \
            "
# A directory of its own: the vendored crates (CARGO_HOME) are unpacked
# beside it, and update_crates reads every Cargo.lock below S.
S = "${UNPACKDIR}/coffer"

CVE_PRODUCT = "coffer"

inherit cargo cargo-update-recipe-crates systemd useradd

# Reproducible: SOURCE_DATE_EPOCH is the time of the repository's last
# commit (the OE default for git sources; these are local files, so the
# commit is read here); cargo runs --frozen (so --locked: Cargo.lock is
# used as it is, offline); the cargo class remaps ${WORKDIR} (sources, the
# vendored crates in CARGO_HOME, the build dir) to ${TARGET_DBGSRC_DIR} in
# every path the compiler writes.
def coffer_commit_time(d):
    import subprocess
    try:
        return subprocess.check_output(
            ["git", "-C", d.getVar("COFFER_TOPDIR"), "log", "-1", "--format=%ct"],
            text=True, stderr=subprocess.DEVNULL).strip()
    except (OSError, subprocess.CalledProcessError):
        return d.getVar("SOURCE_DATE_EPOCH_FALLBACK")
SOURCE_DATE_EPOCH := "${@coffer_commit_time(d)}"

# The TPM backend is the cargo feature `tpm` (default on for a plain cargo
# build); the recipe starts from none and the meta-tpm dynamic layer adds it.
CARGO_BUILD_FLAGS:append = " --no-default-features"
PACKAGECONFIG ??= ""
PACKAGECONFIG[tpm] = "--features tpm,,tpm2-tss,libtss2 libtss2-tcti-device"

SYSTEMD_SERVICE:${PN} = "coffer.service var-lib-coffer.mount"
SYSTEMD_AUTO_ENABLE = "enable"

USERADD_PACKAGES = "${PN}"
GROUPADD_PARAM:${PN} = "--system tss; --system coffer"
USERADD_PARAM:${PN} = "--system --gid coffer --groups tss --home-dir ${localstatedir}/lib/coffer \
                       --no-create-home --shell ${base_sbindir}/nologin coffer"

do_install:append() {
    install -d ${D}${systemd_system_unitdir} ${D}${sysconfdir}/coffer \
        ${D}${libexecdir}/coffer \
        ${D}${sysconfdir}/systemd/system/serial-getty@.service.d
    install -m 0644 ${S}/systemd/coffer.service ${D}${systemd_system_unitdir}/
    install -m 0644 ${S}/systemd/var-lib-coffer.mount ${D}${systemd_system_unitdir}/
    install -m 0644 ${S}/systemd/coffer.toml ${D}${sysconfdir}/coffer/
    install -m 0755 ${S}/systemd/coffer-console-login ${D}${libexecdir}/coffer/
    install -m 0644 ${S}/systemd/serial-getty@.service.d/coffer-console.conf \
        ${D}${sysconfdir}/systemd/system/serial-getty@.service.d/
    install -d -m 0700 ${D}${localstatedir}/lib/coffer
    # The root is read-only: the console's network settings live on the data
    # partition, and networkd sees them through a bind mount.
    sed -i 's|^network_dir = .*|network_dir = "${localstatedir}/lib/coffer/network"|' \
        ${D}${sysconfdir}/coffer/coffer.toml
    install -d ${D}${systemd_system_unitdir}/systemd-networkd.service.d
    install -m 0644 ${S}/systemd/read-only-root/systemd-networkd.service.d/coffer-network.conf \
        ${D}${systemd_system_unitdir}/systemd-networkd.service.d/
}

FILES:${PN} += "${systemd_system_unitdir} \
                ${sysconfdir}/systemd/system/serial-getty@.service.d \
                ${libexecdir}/coffer \
                ${localstatedir}/lib/coffer \
                "
CONFFILES:${PN} = "${sysconfdir}/coffer/coffer.toml"

# The console's getty, networkctl for its network menu, the journal.
RDEPENDS:${PN} = "systemd util-linux-agetty"
