# meta-tpm is in the build: the TPM 2.0 software stack and its device TCTI.
COFFER_TPM_PACKAGES = "libtss2 libtss2-tcti-device"
