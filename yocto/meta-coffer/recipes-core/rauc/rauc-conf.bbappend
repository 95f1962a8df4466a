# Coffer's RAUC configuration, for the coffer-appliance distro:
# image/rauc/system.conf in the repository this layer lives in. The fleet
# operator's CA certificate comes from the build configuration: set
# RAUC_KEYRING_FILE and RAUC_KEYRING_URI (see yocto/README.md); meta-rauc
# warns while its placeholder is used.
FILESEXTRAPATHS:prepend:coffer-appliance := "${THISDIR}/../../../../image/rauc:"
