# meta-tpm is in the build: seal Coffer's data key with the TPM 2.0 (the
# `tpm` cargo feature: the coffer-tpm helper, linked against tpm2-tss and
# installed beside coffer by the cargo class; the device TCTI module is
# loaded at run time, so it is a run-time dependency of its own).
PACKAGECONFIG:append = " tpm"
