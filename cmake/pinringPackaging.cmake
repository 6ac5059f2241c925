# CPack: one Debian package, "pinring", with the daemon, the units, sysusers/tmpfiles entries, the
# flagfile, the library with its headers and CMake/pkg-config files, the tools and the man pages.
#
#   cmake --build build && (cd build && cpack -G DEB)      -> build/pinring_<version>_amd64.deb
#
# The package installs under /usr (configuration in /etc). The unit files and pinring.pc are written
# at install time for the prefix being installed (cmake/pinringInstallTemplates.cmake), so a build
# configured with any CMAKE_INSTALL_PREFIX still packages correct /usr paths. Configure with
# -DCMAKE_INSTALL_PREFIX=/usr to get Debian's multiarch libdir (lib/x86_64-linux-gnu) as well.

set(CPACK_PACKAGE_NAME "pinring")
set(CPACK_PACKAGE_VENDOR "pinring")
set(CPACK_PACKAGE_CONTACT "pinring maintainers <maintainers@pinring.invalid>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "${PROJECT_DESCRIPTION}")
set(CPACK_PACKAGE_VERSION "${PROJECT_VERSION}")
set(CPACK_GENERATOR "DEB")
set(CPACK_SOURCE_GENERATOR "")

# Install with DESTDIR into the staging tree and CMAKE_INSTALL_PREFIX=/usr, so that the install-time
# templates see the real prefix and /etc lands in the package as /etc.
set(CPACK_SET_DESTDIR ON)
set(CPACK_INSTALL_PREFIX "/usr")
set(CPACK_PACKAGING_INSTALL_PREFIX "/usr")

set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION "net")
set(CPACK_DEBIAN_PACKAGE_PRIORITY "optional")
# The body of the Description field; CPack puts the summary above it and indents every line.
set(CPACK_DEBIAN_PACKAGE_DESCRIPTION "ringd owns an RDMA device (or runs a cpu backend without one); client
processes link libpinring, write descriptors into shared-memory rings and reap completions.
Every memory registration runs under a fork-safety mode the user selects.

This package holds ringd and its systemd units, ringctl, pinring-forkcheck, and the client
library with headers, a CMake package (find_package(pinring)) and pinring.pc.")
# Run-time library dependencies come from dpkg-shlibdeps on the installed binaries (libabsl,
# libibverbs1, librdmacm1, liburing2, libsystemd0, libstdc++6, ...). systemd provides
# systemd-sysusers and systemd-tmpfiles, which the maintainer scripts run.
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_DEPENDS "systemd")
# RDMA hardware support (rxe, mlx5, ...) lives in ibverbs-providers; without it ringd uses the cpu
# backend. The -dev packages are what a program built against libpinring (static) also links.
set(CPACK_DEBIAN_PACKAGE_RECOMMENDS "ibverbs-providers, rdma-core")
set(CPACK_DEBIAN_PACKAGE_SUGGESTS
    "libabsl-dev, libibverbs-dev, librdmacm-dev, liburing-dev, pkg-config, cmake")

# Maintainer scripts (what debhelper's dh_installsysusers/tmpfiles/systemd would generate) and the
# conffiles list, so that dpkg keeps an administrator's edits to /etc/pinring/ringd.flags.
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
    "${PROJECT_SOURCE_DIR}/deploy/debian/postinst;${PROJECT_SOURCE_DIR}/deploy/debian/prerm;${PROJECT_SOURCE_DIR}/deploy/debian/postrm;${PROJECT_SOURCE_DIR}/deploy/debian/conffiles")
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)

include(CPack)
