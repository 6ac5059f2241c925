# Runs at install time (from deploy/CMakeLists.txt's install(CODE)), inside cmake_install.cmake:
# CMAKE_INSTALL_PREFIX is the prefix of *this* install (`cmake --install --prefix P`, or /usr under
# dpkg-buildpackage), and file(INSTALL) adds $DESTDIR itself. Writes the prefix-dependent files with the real
# paths and installs them; they are listed in install_manifest.txt like every other file.
#
# Input variables (set by deploy/CMakeLists.txt's generated install-templates.cmake): PINRING_*.

set(PINRING_PREFIX "${CMAKE_INSTALL_PREFIX}")
string(REGEX REPLACE "(.)/+$" "\\1" PINRING_PREFIX "${PINRING_PREFIX}")

# Configuration lives in /etc for the system prefixes, as GNUInstallDirs' "special cases" do and as
# the Filesystem Hierarchy Standard asks; under any other prefix (/usr/local, a test prefix) it
# stays inside the prefix, so that an install never writes outside its prefix by surprise.
if(PINRING_PREFIX STREQUAL "/usr" OR PINRING_PREFIX STREQUAL "/")
  set(PINRING_SYSCONFDIR "/etc")
else()
  set(PINRING_SYSCONFDIR "${PINRING_PREFIX}/etc")
endif()
set(PINRING_CONFDIR "${PINRING_SYSCONFDIR}/pinring")
if(PINRING_PREFIX STREQUAL "/")
  set(_p "")
else()
  set(_p "${PINRING_PREFIX}")
endif()
set(PINRING_SBINDIR "${_p}/${PINRING_INSTALL_SBINDIR}")

set(_gen "${PINRING_GENERATED_DIR}/${PINRING_PREFIX}")
# ringd's units, tmpfiles entry and flagfile (not in a client-only build).
if(NOT PINRING_CLIENT_ONLY)
  set(_units "${_gen}/units")
  configure_file("${PINRING_TEMPLATE_DIR}/systemd/ringd.service.in" "${_units}/ringd.service" @ONLY)
  configure_file("${PINRING_TEMPLATE_DIR}/systemd/ringd.socket.in" "${_units}/ringd.socket" @ONLY)
  configure_file("${PINRING_TEMPLATE_DIR}/tmpfiles.d/pinring.conf.in" "${_gen}/tmpfiles/pinring.conf"
                 @ONLY)
  configure_file("${PINRING_TEMPLATE_DIR}/config/ringd.flags.in" "${_gen}/config/ringd.flags" @ONLY)

  file(INSTALL DESTINATION "${_p}/${PINRING_SYSTEMD_UNIT_DIR}" TYPE FILE
       FILES "${_units}/ringd.service" "${_units}/ringd.socket")
  file(INSTALL DESTINATION "${_p}/lib/sysusers.d" TYPE FILE
       FILES "${PINRING_TEMPLATE_DIR}/sysusers.d/pinring.conf")
  file(INSTALL DESTINATION "${_p}/lib/tmpfiles.d" TYPE FILE FILES "${_gen}/tmpfiles/pinring.conf")
  # The flagfile is the administrator's: the unit reads it, ringd --help documents every flag.
  file(INSTALL DESTINATION "${PINRING_CONFDIR}" TYPE FILE FILES "${_gen}/config/ringd.flags")
endif()

if(PINRING_HAVE_RINGLIB)
  configure_file("${PINRING_TEMPLATE_DIR}/pkgconfig/pinring.pc.in" "${_gen}/pkgconfig/pinring.pc"
                 @ONLY)
  file(INSTALL DESTINATION "${_p}/${PINRING_INSTALL_LIBDIR}/pkgconfig" TYPE FILE
       FILES "${_gen}/pkgconfig/pinring.pc")
endif()
