# One helper per target kind: components (static libraries), tests,
# benchmarks, and the package export.

set(CONVERGE_WARNINGS -Wall -Wextra -Werror -Wshadow -Wnon-virtual-dtor
    -Wimplicit-fallthrough)

if(CONVERGE_SANITIZE)
  add_compile_options(-fsanitize=${CONVERGE_SANITIZE} -fno-omit-frame-pointer
                      -fno-sanitize-recover=all)
  add_link_options(-fsanitize=${CONVERGE_SANITIZE})
endif()

define_property(GLOBAL PROPERTY CONVERGE_UMBRELLA_TARGETS
  BRIEF_DOCS "Component libraries in converge::converge"
  FULL_DOCS "Component libraries in converge::converge")
define_property(GLOBAL PROPERTY CONVERGE_INSTALL_TARGETS
  BRIEF_DOCS "Targets exported by the package"
  FULL_DOCS "Targets exported by the package")

# converge_add_component(<name> SOURCES ... [DEPS ...] [NOT_IN_UMBRELLA])
# Builds converge_<name> (alias converge::<name>) from the folder <name>/,
# installs its headers under include/converge/<name>/.
function(converge_add_component name)
  cmake_parse_arguments(ARG "NOT_IN_UMBRELLA" "" "SOURCES;DEPS" ${ARGN})
  set(target converge_${name})
  add_library(${target} STATIC ${ARG_SOURCES})
  add_library(converge::${name} ALIAS ${target})
  set_target_properties(${target} PROPERTIES EXPORT_NAME ${name})
  target_compile_options(${target} PRIVATE ${CONVERGE_WARNINGS})
  target_include_directories(${target} PUBLIC
    $<BUILD_INTERFACE:${PROJECT_SOURCE_DIR}>
    $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}/converge>)
  target_link_libraries(${target} PUBLIC ${ARG_DEPS})
  file(GLOB headers CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/*.h)
  install(FILES ${headers}
          DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/converge/${name})
  set_property(GLOBAL APPEND PROPERTY CONVERGE_INSTALL_TARGETS ${target})
  if(NOT ARG_NOT_IN_UMBRELLA)
    set_property(GLOBAL APPEND PROPERTY CONVERGE_UMBRELLA_TARGETS ${target})
  endif()
endfunction()

function(converge_add_umbrella)
  get_property(components GLOBAL PROPERTY CONVERGE_UMBRELLA_TARGETS)
  add_library(converge INTERFACE)
  add_library(converge::converge ALIAS converge)
  target_link_libraries(converge INTERFACE ${components})
  set_property(GLOBAL APPEND PROPERTY CONVERGE_INSTALL_TARGETS converge)
endfunction()

# converge_add_test(<target> [SERIAL] SOURCES ... [DEPS ...])
# A GoogleTest binary; every TEST is a ctest test (gtest_discover_tests).
# SERIAL: its tests run alone under ctest -j (they measure rates).
function(converge_add_test target)
  cmake_parse_arguments(ARG "SERIAL" "" "SOURCES;DEPS" ${ARGN})
  add_executable(${target} ${ARG_SOURCES})
  target_compile_options(${target} PRIVATE ${CONVERGE_WARNINGS})
  target_link_libraries(${target} PRIVATE ${ARG_DEPS} GTest::gtest
                        GTest::gmock GTest::gtest_main)
  set(serial FALSE)
  if(ARG_SERIAL)
    set(serial TRUE)
  endif()
  gtest_discover_tests(${target} DISCOVERY_TIMEOUT 60
                       PROPERTIES TIMEOUT 600 RUN_SERIAL ${serial})
endfunction()

# converge_add_benchmark(<target> SOURCES ... [DEPS ...])
function(converge_add_benchmark target)
  cmake_parse_arguments(ARG "" "" "SOURCES;DEPS" ${ARGN})
  add_executable(${target} ${ARG_SOURCES})
  target_compile_options(${target} PRIVATE ${CONVERGE_WARNINGS})
  target_link_libraries(${target} PRIVATE ${ARG_DEPS} benchmark::benchmark)
endfunction()

# Exports converge::<component> and converge::converge from the build tree
# (converge_DIR=<build>) and from an install, plus converge.pc.
function(converge_install_package)
  get_property(targets GLOBAL PROPERTY CONVERGE_INSTALL_TARGETS)
  install(TARGETS ${targets} EXPORT convergeTargets
          ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
          LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
          INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/converge)
  set(cmake_dir ${CMAKE_INSTALL_LIBDIR}/cmake/converge)
  install(EXPORT convergeTargets NAMESPACE converge:: DESTINATION ${cmake_dir})
  export(EXPORT convergeTargets NAMESPACE converge::
         FILE ${PROJECT_BINARY_DIR}/convergeTargets.cmake)

  include(CMakePackageConfigHelpers)
  configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/convergeConfig.cmake.in
    ${PROJECT_BINARY_DIR}/convergeConfig.cmake INSTALL_DESTINATION ${cmake_dir})
  write_basic_package_version_file(${PROJECT_BINARY_DIR}/convergeConfigVersion.cmake
    COMPATIBILITY SameMinorVersion)
  install(FILES ${PROJECT_BINARY_DIR}/convergeConfig.cmake
                ${PROJECT_BINARY_DIR}/convergeConfigVersion.cmake
          DESTINATION ${cmake_dir})

  # pkg-config: libraries in link order, top layer first.
  set(libs "")
  list(REVERSE targets)
  foreach(target IN LISTS targets)
    get_target_property(type ${target} TYPE)
    if(type STREQUAL "STATIC_LIBRARY")
      get_property(in_umbrella GLOBAL PROPERTY CONVERGE_UMBRELLA_TARGETS)
      if(target IN_LIST in_umbrella)
        string(APPEND libs " -l${target}")
      endif()
    endif()
  endforeach()
  set(CONVERGE_PC_LIBS "${libs}")
  configure_file(${PROJECT_SOURCE_DIR}/cmake/converge.pc.in
                 ${PROJECT_BINARY_DIR}/converge.pc @ONLY)
  install(FILES ${PROJECT_BINARY_DIR}/converge.pc
          DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
endfunction()
