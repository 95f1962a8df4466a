# nooelint: oelint.var.suggestedvar.BUGTRACKER
# No BUGTRACKER: the project has none public yet.
SUMMARY = "Coffer appliance: the service and what it needs on the box"
DESCRIPTION = "Coffer and its interactive API viewer (Swagger UI), systemd-networkd with a DHCP default (systemd-conf), RAUC for signed A/B updates, e2fsck for the data partition."
SECTION = "base"
LICENSE = "MIT"

PACKAGE_ARCH = "${MACHINE_ARCH}"

inherit packagegroup

RDEPENDS:${PN} = "${COFFER_TPM_PACKAGES} \
                  coffer \
                  coffer-apidoc \
                  e2fsprogs-e2fsck \
                  rauc \
                  systemd-conf \
                  "
# Filled by the meta-tpm dynamic layer (the TPM 2.0 software stack).
COFFER_TPM_PACKAGES ??= ""
