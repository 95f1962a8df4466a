# nooelint: oelint.var.suggestedvar.CVE_PRODUCT,oelint.var.suggestedvar.BUGTRACKER
# No CVE_PRODUCT: an image is no software of its own (its packages are
# checked). No BUGTRACKER: the project has none public yet.
SUMMARY = "Coffer appliance image"
DESCRIPTION = "A minimal systemd image that runs Coffer: read-only root file \
               system in one of two slots (A/B, updated by RAUC), a writable data \
               partition for Coffer's data dir, the technician console on the \
               serial line, no package manager and no debug tweaks."
SECTION = "images"
LICENSE = "MIT"

inherit core-image

IMAGE_INSTALL = "packagegroup-core-boot packagegroup-coffer"
IMAGE_LINGUAS = ""

# The release image: a read-only root, nothing to log in with but the
# console menu, no package database.
IMAGE_FEATURES = "read-only-rootfs"
IMAGE_FEATURES:remove = "debug-tweaks allow-empty-password allow-root-login empty-root-password package-management"

# A partitioned disk: EFI boot, root slots A and B, data (the partition
# roles the test image shares: the data partition is labelled coffer-data and
# mounted by var-lib-coffer.mount).
IMAGE_FSTYPES = "wic wic.bmap"
WKS_FILE = "coffer-ab.wks"
WKS_FILE_DEPENDS:append = " e2fsprogs-native"

# Serial console with the technician console on it (the getty drop-in
# from systemd/); the kernel logs there too.
SERIAL_CONSOLES ?= "115200;ttyS0"
SERIAL_CONSOLES:qemuarm64 ?= "115200;ttyAMA0"

IMAGE_ROOTFS_EXTRA_SPACE = "0"
