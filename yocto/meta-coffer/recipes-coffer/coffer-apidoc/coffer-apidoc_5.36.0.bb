# nooelint: oelint.var.bbclassextend,oelint.var.mandatoryvar.HOMEPAGE
# No BBCLASSEXTEND: files for the appliance's target only. No HOMEPAGE
# (https://github.com/swagger-api/swagger-ui): the lint would ping it, and
# CI may have no network, so the finding would come and go.
SUMMARY = "Swagger UI for Coffer's interactive API page"
DESCRIPTION = "The files of swagger-ui-dist that Coffer serves at /api when \
               they are present: the script, the stylesheet and their licences, \
               in /usr/share/coffer/apidoc (Coffer's default [https] apidoc_dir). \
               npm's published tarball, checked by its SHA-256; no npm at build time."
BUGTRACKER = "https://github.com/swagger-api/swagger-ui/issues"
SECTION = "net"
# Swagger UI's own code, and what its script bundles (React, Redux,
# Immutable and others under MIT; DOMPurify under Apache-2.0 or MPL-2.0),
# as swagger-ui-bundle.js.LICENSE.txt lists.
LICENSE = "Apache-2.0 & MIT & (Apache-2.0 | MPL-2.0)"
LIC_FILES_CHKSUM = "file://LICENSE;md5=3b83ef96387f14655fc854ddc3c6bd57 \
                    file://swagger-ui-bundle.js.LICENSE.txt;md5=574f909f6c5194bda6533d3b636a8e06 \
                    "

# The version and tarball tools/apidoc/package-lock.json pins (its sha512
# integrity is of the same file).
SRC_URI = "https://registry.npmjs.org/swagger-ui-dist/-/swagger-ui-dist-${PV}.tgz"
SRC_URI[sha256sum] = "685a2b38b5d6eab2dbc096a8596db11cc7409cdb671d2e3bec8f9b017d0d566b"

S = "${UNPACKDIR}/package"

CVE_PRODUCT = "smartbear:swagger-ui"

inherit allarch

do_configure[noexec] = "1"
do_compile[noexec] = "1"

do_install() {
    install -d ${D}${datadir}/coffer/apidoc
    for f in swagger-ui-bundle.js swagger-ui.css LICENSE NOTICE swagger-ui-bundle.js.LICENSE.txt; do
        install -m 0644 ${S}/$f ${D}${datadir}/coffer/apidoc/
    done
}

FILES:${PN} += "${datadir}/coffer/apidoc"
